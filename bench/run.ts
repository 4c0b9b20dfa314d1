/**
 * `npm run bench -- NAME [options]`: runs the benchmark in `bench/NAME.ts`. Each benchmark
 * module exports `main(args: string[]): Promise<void>`.
 */
const [name, ...args] = process.argv.slice(2);
if (name === undefined || !/^[a-z][a-z0-9-]*$/.test(name)) {
  console.error(
    'usage: npm run bench -- NAME [options]   (NAME is a file in bench/, e.g. storage)',
  );
  process.exit(2);
}
const module = (await import(`./${name}.js`)) as { main(args: string[]): Promise<void> };
await module.main(args);

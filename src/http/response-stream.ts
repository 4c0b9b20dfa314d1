/**
 * A streamed response body for `_changes`: chunks written with backpressure (a write waits
 * for `drain` when the socket's buffer is full) and an abort signal that fires when the
 * client goes away, so a waiting feed stops at once.
 *
 * The stream goes to fastify with `reply.send(stream)`, so the status, the headers set on the
 * reply, and the request's log line work as for any other response.
 */
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { FastifyReply } from 'fastify';

export class ResponseStream {
  private readonly stream = new PassThrough();
  private readonly controller = new AbortController();
  private ended = false;

  constructor(reply: FastifyReply, status: number, headers: Readonly<Record<string, string>>) {
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) this.controller.abort();
    });
    this.stream.once('close', () => this.controller.abort());
    reply.code(status).headers(headers).send(this.stream);
  }

  /** Aborts when the client disconnects. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.controller.signal.aborted;
  }

  /** Writes a chunk; resolves once the stream can take more. */
  async write(chunk: string | Buffer): Promise<void> {
    if (this.aborted || this.ended || chunk.length === 0) return;
    if (!this.stream.write(chunk)) {
      await Promise.race([once(this.stream, 'drain'), once(this.controller.signal, 'abort')]);
    }
  }

  /** Writes the last chunk and ends the body. */
  end(chunk: string | Buffer = ''): void {
    if (this.ended) return;
    this.ended = true;
    if (this.aborted) {
      this.stream.destroy();
      return;
    }
    this.stream.end(chunk);
  }

  /** Ends the body abruptly after an error that came too late for an error status. */
  destroy(): void {
    this.ended = true;
    this.stream.destroy();
  }
}

/**
 * A CouchDB document model for the checker: one document whose state is the unique value
 * (token) of the revision that currently wins, or null while the document is missing or
 * deleted. The chaos harness writes a fresh token with every write, so a token names exactly
 * one write and one revision; clients send the `_rev` they saw together with the token they
 * saw with it, and the model compares tokens.
 *
 * Operations, as CouchDB 3.x applies interactive edits to a document with one branch:
 * - `read`: the current token, or not found;
 * - `create` (a write without `_rev`): succeeds only while the document is missing or deleted,
 *   else it is a conflict;
 * - `update` (a write with `_rev`, compare-and-set): succeeds only when `expected` is current;
 * - `delete` (with `_rev`): succeeds only when `expected` is current, and the document is
 *   then missing.
 * A rejected write (`conflict`) proves its precondition did not hold. A write that failed
 * without being applied (`not_applied`: a refused connection, a 503 saying it was not applied)
 * proves nothing about the state and must not change it. With an unknown output (null) a write
 * takes effect exactly when its precondition holds.
 */
import type { Model } from '../model.js';

export type DocumentInput =
  | { readonly op: 'read' }
  | { readonly op: 'create'; readonly value: string }
  | {
      readonly op: 'update';
      readonly expected: string;
      readonly value: string;
      /** The `_rev` sent, for reports only. */
      readonly rev?: string;
    }
  | { readonly op: 'delete'; readonly expected: string; readonly rev?: string };

export type DocumentOutput =
  | { readonly found: true; readonly value: string; readonly rev: string }
  | { readonly found: false }
  | { readonly ok: true; readonly rev: string }
  | { readonly ok: false; readonly reason: 'conflict' | 'not_applied' };

/** The winning revision's token, or null while the document is missing or deleted. */
export type DocumentState = string | null;

function readStep(state: DocumentState, output: DocumentOutput | null): DocumentState | undefined {
  if (output === null) return state;
  if (!('found' in output)) return undefined;
  if (output.found) return output.value === state ? state : undefined;
  return state === null ? state : undefined;
}

function writeStep(
  state: DocumentState,
  holds: boolean,
  after: DocumentState,
  output: DocumentOutput | null,
): DocumentState | undefined {
  if (output === null) return holds ? after : state;
  if (!('ok' in output)) return undefined;
  if (output.ok) return holds ? after : undefined;
  if (output.reason === 'not_applied') return state;
  return holds ? undefined : state;
}

export const documentModel: Model<DocumentState, DocumentInput, DocumentOutput> = {
  name: 'document',
  init: () => null,
  step(state, input, output) {
    switch (input.op) {
      case 'read':
        return readStep(state, output);
      case 'create':
        return writeStep(state, state === null, input.value, output);
      case 'update':
        return writeStep(state, state !== null && state === input.expected, input.value, output);
      case 'delete':
        return writeStep(state, state !== null && state === input.expected, null, output);
    }
  },
  key: (state) => (state === null ? '\u0000' : `=${state}`),
  describeOperation(input, output) {
    const result = output === null ? '?' : describeOutput(output);
    switch (input.op) {
      case 'read':
        return `read -> ${result}`;
      case 'create':
        return `create(${input.value}) -> ${result}`;
      case 'update':
        return `update(${input.expected} => ${input.value}${revNote(input.rev)}) -> ${result}`;
      case 'delete':
        return `delete(${input.expected}${revNote(input.rev)}) -> ${result}`;
    }
  },
  describeState: (state) => (state === null ? 'missing' : state),
  isReadOnly: (input) => input.op === 'read',
};

function describeOutput(output: DocumentOutput): string {
  if ('found' in output) return output.found ? `${output.value} (${output.rev})` : 'not found';
  return output.ok ? `ok ${output.rev}` : output.reason;
}

function revNote(rev: string | undefined): string {
  return rev === undefined ? '' : ` at ${rev}`;
}

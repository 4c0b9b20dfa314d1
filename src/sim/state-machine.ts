/**
 * State machines the simulated nodes apply committed entries to. Applying is deterministic, so
 * every replica that applies the same entries holds the same state; a snapshot is the state's
 * bytes, fetched by a follower from the leader.
 *
 * - KvStateMachine: string registers with put, delete and compare-and-set, the workload that
 *   the linearizability checker verifies.
 * - HashChainStateMachine: the SHA-256 hash chain of applied values, starting from the single
 *   byte 0, whose result after each entry is the new hash.
 */
import { createHash } from 'node:crypto';

export interface StateMachine {
  /** Applies one entry's data (never empty) and returns the result for the proposer. */
  apply(data: Uint8Array): unknown;
  snapshot(): Uint8Array;
  restore(bytes: Uint8Array): void;
  /** A digest of the state, to compare replicas. */
  digest(): string;
}

export type KvCommand =
  | { readonly op: 'put'; readonly key: string; readonly value: string }
  | { readonly op: 'delete'; readonly key: string }
  | {
      readonly op: 'cas';
      readonly key: string;
      readonly expected: string | null;
      readonly value: string;
    };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(command: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

export class KvStateMachine implements StateMachine {
  #values = new Map<string, string>();

  get(key: string): string | null {
    return this.#values.get(key) ?? null;
  }

  apply(data: Uint8Array): unknown {
    const command = JSON.parse(decoder.decode(data)) as KvCommand;
    switch (command.op) {
      case 'put':
        this.#values.set(command.key, command.value);
        return {};
      case 'delete':
        this.#values.delete(command.key);
        return {};
      case 'cas': {
        const ok = this.get(command.key) === command.expected;
        if (ok) this.#values.set(command.key, command.value);
        return { ok };
      }
    }
  }

  snapshot(): Uint8Array {
    const sorted = [...this.#values].sort(([a], [b]) => a.localeCompare(b, 'en'));
    return encoder.encode(JSON.stringify(sorted));
  }

  restore(bytes: Uint8Array): void {
    this.#values = new Map(JSON.parse(decoder.decode(bytes)) as [string, string][]);
  }

  digest(): string {
    return decoder.decode(this.snapshot());
  }
}

export class HashChainStateMachine implements StateMachine {
  #hash: Uint8Array = Uint8Array.of(0);

  apply(data: Uint8Array): unknown {
    const next = createHash('sha256').update(this.#hash).update(data).digest();
    this.#hash = new Uint8Array(next);
    return Buffer.from(this.#hash).toString('hex');
  }

  snapshot(): Uint8Array {
    return this.#hash.slice();
  }

  restore(bytes: Uint8Array): void {
    this.#hash = bytes.slice();
  }

  digest(): string {
    return Buffer.from(this.#hash).toString('hex');
  }
}

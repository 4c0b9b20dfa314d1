import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { decodeGroupMessage, encodeGroupMessage, MESSAGE_TYPES } from '../../src/cluster/wire.js';
import { type Message, message } from '../../src/raft/index.js';

const packr = new Packr({ useRecords: false });
const index = fc.nat({ max: 2 ** 40 });
const name = fc.constantFrom('n1', 'n2', 'n3', 'node-with-a-long-name');
const membership = fc.record(
  {
    voters: fc.array(name, { maxLength: 5 }),
    learners: fc.array(name, { maxLength: 2 }),
    votersOutgoing: fc.array(name, { maxLength: 5 }),
  },
  { noNullPrototype: true },
);

const messageArbitrary: fc.Arbitrary<Message> = fc
  .record({
    type: fc.constantFrom(...MESSAGE_TYPES),
    from: name,
    to: name,
    term: index,
    logTerm: index,
    index,
    entries: fc.array(
      fc.record({
        index,
        term: index,
        type: fc.constantFrom('normal' as const, 'config' as const),
        data: fc.uint8Array({ maxLength: 64 }),
      }),
      { maxLength: 4 },
    ),
    commit: index,
    reject: fc.boolean(),
    hintIndex: index,
    hintTerm: index,
    context: index,
    quiesce: fc.boolean(),
    readContext: fc.string({ maxLength: 12 }),
    snapshot: fc.option(fc.record({ index, term: index, membership }, { noNullPrototype: true })),
    transfer: fc.boolean(),
  })
  .map((fields) => message(fields));

test('group messages survive the wire', () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[0-9a-f]{32}$/), messageArbitrary, (group, sent) => {
      const wire = packr.unpack(packr.pack(encodeGroupMessage(group, sent)));
      const received = decodeGroupMessage(wire);
      assert.ok(received !== null);
      assert.equal(received.group, group);
      assert.deepEqual(
        {
          ...received.message,
          entries: received.message.entries.map((e) => ({ ...e, data: [...e.data] })),
        },
        { ...sent, entries: sent.entries.map((e) => ({ ...e, data: [...e.data] })) },
      );
    }),
  );
});

test('malformed payloads decode to null', () => {
  const good = encodeGroupMessage('g', message({ type: 'heartbeat', from: 'n1', to: 'n2' }));
  const cases: unknown[] = [
    null,
    42,
    'text',
    [],
    good.slice(0, 10),
    [2, ...good.slice(1)],
    good.map((value, i) => (i === 2 ? 99 : value)),
    good.map((value, i) => (i === 5 ? -1 : value)),
    good.map((value, i) => (i === 5 ? 1.5 : value)),
    good.map((value, i) => (i === 8 ? [[1, 1, 0, 'not bytes']] : value)),
    good.map((value, i) => (i === 3 ? 'x'.repeat(1000) : value)),
    good.map((value, i) => (i === 17 ? 'yes' : value)),
  ];
  for (const payload of cases)
    assert.equal(decodeGroupMessage(payload), null, JSON.stringify(payload));
  fc.assert(
    fc.property(fc.anything(), (payload) => {
      decodeGroupMessage(payload);
    }),
  );
});

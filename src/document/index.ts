/**
 * The document layer's public API in one import: JSON as bytes, document parsing and
 * rendering, ids, revisions, revision trees (merge, stem, reads, interactive edits, binary
 * encoding), revision ids and Mango selectors. Everything here is pure: no I/O, no clock, no
 * randomness. Each module's header documents its part.
 */
export * from './bytes.js';
export * from './collate.js';
export * from './doc-id.js';
export * from './document.js';
export * from './json.js';
export * from './render.js';
export * from './rev.js';
export * from './rev-edit.js';
export * from './rev-stem.js';
export * from './rev-tree.js';
export * from './rev-tree-codec.js';
export * from './rev-tree-query.js';
export * from './revid.js';
export * from './selector.js';

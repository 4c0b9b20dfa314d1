/** The parts of pouchdb-node 9 (which ships no types) that the replication test uses. */
declare module 'pouchdb-node' {
  interface ReplicationResult {
    readonly ok: boolean;
    readonly docs_read: number;
    readonly docs_written: number;
  }
  interface Database {
    close(): Promise<void>;
  }
  interface PouchDBStatic {
    new (
      name: string,
      options?: { auth?: { username: string; password: string }; skip_setup?: boolean },
    ): Database;
    replicate(source: Database, target: Database): Promise<ReplicationResult>;
  }
  const PouchDB: PouchDBStatic;
  export default PouchDB;
}

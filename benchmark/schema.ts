/**
 * The benchmark database schema, as numbered migrations. Plain SQL types that SQLite and a server database
 * (PostgreSQL, MySQL) all accept — VARCHAR ids, INTEGER, DOUBLE PRECISION, TEXT, ISO 8601 timestamps as
 * text — no SQLite-only features, so the same statements can create a shared database later.
 *
 * Rows are never updated or deleted, with one exception: a run's own `status` and `finished_at` are set once
 * when it finishes. A migration is only ever appended; an applied one is never edited.
 */

export interface Migration {
  version: number;
  description: string;
  statements: string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'runs and case results',
    statements: [
      `CREATE TABLE runs (
        id VARCHAR(200) NOT NULL PRIMARY KEY,
        suite_name VARCHAR(200) NOT NULL,
        cluster_name VARCHAR(200) NOT NULL,
        started_at VARCHAR(32) NOT NULL,
        finished_at VARCHAR(32),
        status VARCHAR(16) NOT NULL,
        fingerprint_json TEXT NOT NULL
      )`,
      'CREATE INDEX runs_by_cluster ON runs (cluster_name, started_at)',
      `CREATE TABLE case_results (
        run_id VARCHAR(200) NOT NULL REFERENCES runs (id),
        case_id VARCHAR(200) NOT NULL,
        position INTEGER NOT NULL,
        title TEXT NOT NULL,
        preset VARCHAR(100),
        impl VARCHAR(16) NOT NULL,
        train_precision VARCHAR(16) NOT NULL,
        seq_length INTEGER NOT NULL,
        nodes INTEGER NOT NULL,
        devices_per_node INTEGER NOT NULL,
        tp INTEGER,
        pp INTEGER,
        cp INTEGER,
        ep INTEGER,
        vpp INTEGER,
        num_layer_list VARCHAR(400),
        micro_batch_size INTEGER,
        global_batch_size INTEGER,
        baseline DOUBLE PRECISION,
        tokens_per_s_per_device DOUBLE PRECISION,
        tokens_min DOUBLE PRECISION,
        tokens_max DOUBLE PRECISION,
        tokens_mad DOUBLE PRECISION,
        ms_per_iteration DOUBLE PRECISION,
        measured_iterations INTEGER,
        tflops_per_device DOUBLE PRECISION,
        verdict VARCHAR(16) NOT NULL,
        failure_class VARCHAR(32),
        reason TEXT NOT NULL,
        log_excerpt TEXT,
        compared_with VARCHAR(16) NOT NULL,
        history_nights INTEGER NOT NULL,
        history_median DOUBLE PRECISION,
        history_mad DOUBLE PRECISION,
        noise_low DOUBLE PRECISION,
        noise_high DOUBLE PRECISION,
        change_vs_history_percent DOUBLE PRECISION,
        change_vs_baseline_percent DOUBLE PRECISION,
        recorded_at VARCHAR(32) NOT NULL,
        PRIMARY KEY (run_id, case_id)
      )`,
      'CREATE INDEX case_results_by_case ON case_results (case_id, run_id)',
    ],
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/** Created before any migration; one row per applied migration. */
export const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER NOT NULL PRIMARY KEY,
  description TEXT NOT NULL,
  applied_at VARCHAR(32) NOT NULL
)`;

/*
 * postgres.c - the PostgreSQL backend of store.h (libpq).
 *
 * The logical schema is that of sqlite.c (DESIGN.md, "Storage"), so the
 * two backends answer the same way; `ehr migrate` copies one into the
 * other. Several `ehr serve` processes may share one database:
 *
 *  - Schema migrations run at open under a session advisory lock, so
 *    servers starting together apply each migration once and agree on the
 *    version (table ehr_schema).
 *  - Every write transaction takes one transaction-scoped advisory lock at
 *    BEGIN (the equivalent of SQLite's BEGIN IMMEDIATE). Every write also
 *    appends to the audit hash chain, whose head is a single point anyway;
 *    the lock makes read-check-write sequences (If-Match, conditional
 *    create/update/delete, transaction bundles) and the chain safe across
 *    processes without retries. Each process batches its writers into one
 *    transaction (repo.c, group commit), so the lock is taken once per
 *    batch, not once per write. Reads never wait for it.
 *  - Read transactions are REPEATABLE READ: a page and its total come from
 *    one snapshot.
 *  - A put is one statement (data-modifying CTEs, index rows as arrays):
 *    one round trip whatever the number of index values.
 *
 * Resilience: a failed statement never reports success. A lost
 * connection, or a server shutting down, starting or in recovery, is
 * EHR_EBUSY (HTTP 503); the session is re-established at the next use
 * outside a transaction, and a read or a BEGIN that finds the connection
 * dead is retried once on the new one.
 */
#include <inttypes.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store/pg_int.h"

/* advisory lock keys (two int4): "ehr " and a purpose */
#define LOCK_NS 1701343776
#define LOCK_WRITE 1
#define LOCK_MIGRATE 2

#define GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

#define GRP                                                                                        \
    {                                                                                              \
        "grp", "int", PF_GRP                                                                       \
    }
const struct pg_kind ehr_pg__kinds[PG_N_KINDS] = {
    [EHR_IDX_STRING] =
        {"idx_string",
         4,
         {{"param", "text", PF_PARAM}, {"norm", "text", PF_S1}, {"exact", "text", PF_S2}, GRP}},
    [EHR_IDX_TOKEN] = {"idx_token",
                       5,
                       {{"param", "text", PF_PARAM},
                        {"system", "text", PF_S1},
                        {"code", "text", PF_S2},
                        {"text", "text", PF_S3},
                        GRP}},
    [EHR_IDX_DATE] =
        {"idx_date",
         4,
         {{"param", "text", PF_PARAM}, {"lo", "bigint", PF_LO}, {"hi", "bigint", PF_HI}, GRP}},
    [EHR_IDX_REFERENCE] = {"idx_reference",
                           5,
                           {{"param", "text", PF_PARAM},
                            {"target_type", "text", PF_S1},
                            {"target_id", "text", PF_S2},
                            {"url", "text", PF_S3},
                            GRP}},
    [EHR_IDX_QUANTITY] = {"idx_quantity",
                          5,
                          {{"param", "text", PF_PARAM},
                           {"value", "float8", PF_NUM},
                           {"system", "text", PF_S1},
                           {"code", "text", PF_S2},
                           GRP}},
    [EHR_IDX_NUMBER] = {"idx_number",
                        3,
                        {{"param", "text", PF_PARAM}, {"value", "float8", PF_NUM}, GRP}},
    [EHR_IDX_URI] = {"idx_uri", 3, {{"param", "text", PF_PARAM}, {"uri", "text", PF_S1}, GRP}},
    [EHR_IDX_TEXT] = {"idx_text", 3, {{"param", "text", PF_PARAM}, {"body", "text", PF_S1}, GRP}},
};
#undef GRP

/*
 * Versioned migrations: index i brings the schema from version i to i+1,
 * numbered as in sqlite.c (the same number means the same logical change).
 * Text columns compared in queries use the "C" collation: byte order and
 * equality, as SQLite's, and btree-usable for prefix matches.
 */
static const char *const migrations[] = {
    /* 1: the logical schema of DESIGN.md */
    "CREATE TABLE resource ("
    "  rid bigserial PRIMARY KEY,"
    "  type text COLLATE \"C\" NOT NULL, id text COLLATE \"C\" NOT NULL,"
    "  version bigint NOT NULL, last_updated bigint NOT NULL,"
    "  deleted boolean NOT NULL DEFAULT false, method text NOT NULL, content text,"
    "  UNIQUE(type, id, version));"
    "CREATE INDEX resource_type_rid ON resource(type, rid);"
    "CREATE INDEX resource_updated ON resource(last_updated);"
    "CREATE TABLE current ("
    "  key bigserial PRIMARY KEY,"
    "  type text COLLATE \"C\" NOT NULL, id text COLLATE \"C\" NOT NULL,"
    "  rid bigint NOT NULL, version bigint NOT NULL, last_updated bigint NOT NULL,"
    "  deleted boolean NOT NULL DEFAULT false, UNIQUE(type, id));"
    "CREATE INDEX current_type_updated ON current(type, last_updated);"
    "CREATE INDEX current_updated ON current(last_updated);"
    "CREATE TABLE idx_string(key bigint NOT NULL, type text COLLATE \"C\" NOT NULL,"
    "  param text COLLATE \"C\" NOT NULL, norm text COLLATE \"C\", exact text COLLATE \"C\");"
    "CREATE INDEX idx_string_v ON idx_string(type, param, norm);"
    "CREATE INDEX idx_string_e ON idx_string(type, param, exact);"
    "CREATE INDEX idx_string_k ON idx_string(key);"
    "CREATE TABLE idx_token(key bigint NOT NULL, type text COLLATE \"C\" NOT NULL,"
    "  param text COLLATE \"C\" NOT NULL, system text COLLATE \"C\", code text COLLATE \"C\","
    "  text text);"
    "CREATE INDEX idx_token_v ON idx_token(type, param, code, system);"
    "CREATE INDEX idx_token_k ON idx_token(key);"
    "CREATE TABLE idx_date(key bigint NOT NULL, type text COLLATE \"C\" NOT NULL,"
    "  param text COLLATE \"C\" NOT NULL, lo bigint, hi bigint);"
    "CREATE INDEX idx_date_v ON idx_date(type, param, lo, hi);"
    "CREATE INDEX idx_date_k ON idx_date(key);"
    "CREATE TABLE idx_reference(key bigint NOT NULL, type text COLLATE \"C\" NOT NULL,"
    "  param text COLLATE \"C\" NOT NULL, target_type text COLLATE \"C\","
    "  target_id text COLLATE \"C\", url text);"
    "CREATE INDEX idx_reference_v ON idx_reference(type, param, target_id, target_type);"
    "CREATE INDEX idx_reference_k ON idx_reference(key);"
    "CREATE TABLE idx_quantity(key bigint NOT NULL, type text COLLATE \"C\" NOT NULL,"
    "  param text COLLATE \"C\" NOT NULL, value float8, system text COLLATE \"C\","
    "  code text COLLATE \"C\");"
    "CREATE INDEX idx_quantity_v ON idx_quantity(type, param, value);"
    "CREATE INDEX idx_quantity_k ON idx_quantity(key);"
    "CREATE TABLE idx_number(key bigint NOT NULL, type text COLLATE \"C\" NOT NULL,"
    "  param text COLLATE \"C\" NOT NULL, value float8);"
    "CREATE INDEX idx_number_v ON idx_number(type, param, value);"
    "CREATE INDEX idx_number_k ON idx_number(key);"
    "CREATE TABLE idx_uri(key bigint NOT NULL, type text COLLATE \"C\" NOT NULL,"
    "  param text COLLATE \"C\" NOT NULL, uri text COLLATE \"C\");"
    "CREATE INDEX idx_uri_v ON idx_uri(type, param, uri);"
    "CREATE INDEX idx_uri_k ON idx_uri(key);"
    "CREATE TABLE compartment(patient text COLLATE \"C\" NOT NULL, key bigint NOT NULL,"
    "  PRIMARY KEY(patient, key));"
    "CREATE INDEX compartment_k ON compartment(key);"
    "CREATE TABLE audit(seq bigint PRIMARY KEY, time bigint NOT NULL,"
    "  prev_hash text NOT NULL, hash text NOT NULL, event text NOT NULL);"
    "CREATE FUNCTION ehr_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS"
    "  $$BEGIN RAISE EXCEPTION 'the audit log is append-only'; END$$;"
    "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit"
    "  FOR EACH ROW EXECUTE FUNCTION ehr_audit_append_only();"
    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit"
    "  FOR EACH STATEMENT EXECUTE FUNCTION ehr_audit_append_only();"
    /* :contains on strings: a trigram index when pg_trgm can be had (a
       trusted extension since PostgreSQL 13: the database owner may create
       it); without it the search still works, by a scan */
    "DO $$BEGIN CREATE EXTENSION IF NOT EXISTS pg_trgm;"
    "  EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'pg_trgm is not available'; END$$;"
    "DO $$BEGIN IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN"
    "  EXECUTE 'CREATE INDEX idx_string_trgm ON idx_string USING gin (norm gin_trgm_ops)';"
    "  END IF; END$$;",
    /* 2: access control and auth: the compartment of every version; module
       state as small JSON documents */
    "CREATE TABLE version_compartment(rid bigint NOT NULL, patient text COLLATE \"C\" NOT NULL,"
    "  PRIMARY KEY(rid, patient));"
    "CREATE INDEX version_compartment_p ON version_compartment(patient, rid);"
    "INSERT INTO version_compartment(rid, patient)"
    "  SELECT c.rid, p.patient FROM compartment p JOIN current c ON c.key = p.key"
    "  ON CONFLICT DO NOTHING;"
    "CREATE TABLE auth_object(kind text COLLATE \"C\" NOT NULL, key text COLLATE \"C\" NOT NULL,"
    "  owner text COLLATE \"C\", expires bigint NOT NULL DEFAULT 0, doc text NOT NULL,"
    "  PRIMARY KEY(kind, key));"
    "CREATE INDEX auth_object_owner ON auth_object(kind, owner);"
    "CREATE INDEX audit_time ON audit(time);",
    /* 3: search: composite items (grp), probes by (key, param), :text on
       token display text, quantities by unit */
    "ALTER TABLE idx_string ADD COLUMN grp int NOT NULL DEFAULT 0;"
    "ALTER TABLE idx_token ADD COLUMN grp int NOT NULL DEFAULT 0;"
    "ALTER TABLE idx_date ADD COLUMN grp int NOT NULL DEFAULT 0;"
    "ALTER TABLE idx_reference ADD COLUMN grp int NOT NULL DEFAULT 0;"
    "ALTER TABLE idx_quantity ADD COLUMN grp int NOT NULL DEFAULT 0;"
    "ALTER TABLE idx_number ADD COLUMN grp int NOT NULL DEFAULT 0;"
    "ALTER TABLE idx_uri ADD COLUMN grp int NOT NULL DEFAULT 0;"
    "DROP INDEX idx_string_k; CREATE INDEX idx_string_k ON idx_string(key, param);"
    "DROP INDEX idx_token_k; CREATE INDEX idx_token_k ON idx_token(key, param);"
    "DROP INDEX idx_date_k; CREATE INDEX idx_date_k ON idx_date(key, param);"
    "DROP INDEX idx_reference_k; CREATE INDEX idx_reference_k ON idx_reference(key, param);"
    "DROP INDEX idx_quantity_k; CREATE INDEX idx_quantity_k ON idx_quantity(key, param);"
    "DROP INDEX idx_number_k; CREATE INDEX idx_number_k ON idx_number(key, param);"
    "DROP INDEX idx_uri_k; CREATE INDEX idx_uri_k ON idx_uri(key, param);"
    "ALTER TABLE idx_token ALTER COLUMN text TYPE text COLLATE \"C\";"
    "CREATE INDEX idx_token_text ON idx_token(type, param, text);"
    "CREATE INDEX idx_quantity_c ON idx_quantity(type, param, code, value);"
    "CREATE INDEX idx_reference_t ON idx_reference(target_type, target_id);",
    /* 4: HL7 v2 messages, raw, in and out (postgres_hl7.c) */
    "CREATE TABLE hl7_message(id bigserial PRIMARY KEY, direction text NOT NULL,"
    "  peer text NOT NULL, control_id text NOT NULL, type text NOT NULL,"
    "  status text NOT NULL, ack_code text, outcome text,"
    "  received bigint NOT NULL, processed bigint NOT NULL DEFAULT 0,"
    "  attempts bigint NOT NULL DEFAULT 0, next_try bigint NOT NULL DEFAULT 0,"
    "  raw bytea NOT NULL, ack bytea, dedup text UNIQUE);"
    "CREATE INDEX hl7_message_status ON hl7_message(direction, status, next_try);",
    /* 5: placeholder for bulk export jobs, as in sqlite.c */
    "SELECT 1;",
    /* 6: the audit journal's mark (unused on PostgreSQL, which has no local
       journal; kept so that the schema matches and `ehr migrate` copies it) */
    "CREATE TABLE audit_journal(id int PRIMARY KEY CHECK (id = 1),"
    "  generation bigint NOT NULL, applied bigint NOT NULL);"
    "INSERT INTO audit_journal(id, generation, applied) VALUES (1, 0, 0);",
    /* 7: search, full text of _text and _content (postgres_search.c): one
       row per resource and parameter, a GIN index over its words ('simple':
       no stemming, as the SQLite index) */
    "CREATE TABLE idx_text(key bigint NOT NULL, type text COLLATE \"C\" NOT NULL,"
    "  param text COLLATE \"C\" NOT NULL, body text, grp int NOT NULL DEFAULT 0);"
    "CREATE INDEX idx_text_k ON idx_text(key, param);"
    "CREATE INDEX idx_text_w ON idx_text USING gin (to_tsvector('simple', body));"
    "CREATE INDEX IF NOT EXISTS idx_reference_t ON idx_reference(target_id, target_type);",
};
#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])

/* -- parameters and queries -------------------------------------------- */

const char *pg_i64(char buf[24], int64_t v)
{
    snprintf(buf, 24, "%" PRId64, v);
    return buf;
}

int64_t pg_get_i64(const PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

void pgq_init(struct pg_q *q)
{
    memset(q, 0, sizeof *q);
    q->sql = (ehr_buf)EHR_BUF_INIT;
    q->a = ehr_arena_new();
    if (!q->a)
        q->oom = true;
}

void pgq_free(struct pg_q *q)
{
    ehr_buf_free(&q->sql);
    ehr_arena_free(&q->a);
    free(q->vals);
    q->vals = NULL;
}

static int pgq_add(struct pg_q *q, const char *owned)
{
    if (q->n == q->cap) {
        int cap = q->cap ? q->cap * 2 : 32;
        const char **v = realloc(q->vals, (size_t)cap * sizeof *v);
        if (!v) {
            q->oom = true;
            return 1;
        }
        q->vals = v;
        q->cap = cap;
    }
    q->vals[q->n] = owned;
    return ++q->n;
}

int pgq_text(struct pg_q *q, const char *s)
{
    return pgq_add(q, s && q->a ? ehr_arena_strdup(q->a, s) : NULL);
}

int pgq_int(struct pg_q *q, int64_t v)
{
    return pgq_add(q, q->a ? ehr_arena_printf(q->a, "%" PRId64, v) : NULL);
}

static void real_text(char *out, size_t n, double v)
{
    if (isnan(v))
        snprintf(out, n, "NaN");
    else if (isinf(v))
        snprintf(out, n, v > 0 ? "Infinity" : "-Infinity");
    else
        snprintf(out, n, "%.17g", v);
}

int pgq_real(struct pg_q *q, double v)
{
    char b[40];
    real_text(b, sizeof b, v);
    return pgq_text(q, b);
}

/* Quote one element of an array literal. */
static ehr_status array_elem(ehr_buf *b, const char *s)
{
    if (!s)
        return ehr_buf_puts(b, "NULL");
    ehr_status st = ehr_buf_putc(b, '"');
    for (; !st && *s; s++) {
        if (*s == '"' || *s == '\\')
            st = ehr_buf_putc(b, '\\');
        if (!st)
            st = ehr_buf_putc(b, *s);
    }
    return st ? st : ehr_buf_putc(b, '"');
}

ehr_status pg_array_literal(ehr_buf *b, const char *const *v, size_t n)
{
    ehr_status st = ehr_buf_putc(b, '{');
    for (size_t i = 0; !st && i < n; i++) {
        if (i)
            st = ehr_buf_putc(b, ',');
        if (!st)
            st = array_elem(b, v[i]);
    }
    return st ? st : ehr_buf_putc(b, '}');
}

int pgq_array(struct pg_q *q, const char *const *v, size_t n)
{
    ehr_buf b = EHR_BUF_INIT;
    if (pg_array_literal(&b, v, n)) {
        ehr_buf_free(&b);
        q->oom = true;
        return pgq_add(q, "{}");
    }
    int k = pgq_text(q, b.data);
    ehr_buf_free(&b);
    return k;
}

/* -- errors and the session -------------------------------------------- */

/* Is this SQLSTATE a condition that goes away by itself (EHR_EBUSY)? */
static bool transient(const char *state)
{
    if (!state)
        return true;                    /* no server answer at all: the connection */
    return !strncmp(state, "08", 2) ||  /* connection exception */
           !strcmp(state, "40001") ||   /* serialization failure */
           !strcmp(state, "40P01") ||   /* deadlock */
           !strncmp(state, "57P", 3) || /* shutdown, cannot connect now */
           !strcmp(state, "53300") ||   /* too many connections */
           !strcmp(state, "55P03") ||   /* lock not available */
           !strcmp(state, "25006");     /* read-only transaction (a standby) */
}

ehr_status pg_fail(struct pg_conn *c, PGresult *res, ehr_err *err, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    bool lost = PQstatus(c->pg) != CONNECTION_OK;
    ehr_status st = EHR_EIO;
    if (lost || transient(state))
        st = EHR_EBUSY;
    else if (state && !strcmp(state, "23505"))
        st = EHR_ECONFLICT;
    else if (state && !strcmp(state, "54000"))
        st = EHR_ELIMIT;
    /* the primary message only: the detail may quote stored values */
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg)
        msg = PQerrorMessage(c->pg);
    char m[256];
    snprintf(m, sizeof m, "%s", msg ? msg : "unknown error");
    m[strcspn(m, "\n")] = '\0';
    if (lost)
        ehr_err_set(err, st, "%s: the database is unavailable (%s)", what, m);
    else
        ehr_err_set(err, st, "%s: %s%s%s", what, m, state ? " SQLSTATE " : "", state ? state : "");
    PQclear(res);
    return st;
}

/* Settings of every session (after connecting or reconnecting). */
static ehr_status session_setup(struct pg_conn *c, ehr_err *err)
{
    PGresult *r = PQexec(c->pg, "SET client_min_messages = warning; SET TIME ZONE 'UTC';"
                                "SET lock_timeout = '60s'");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return pg_fail(c, r, err, "configuring the database session");
    PQclear(r);
    memset(c->prepared, 0, sizeof c->prepared);
    return EHR_OK;
}

static PGconn *pg_connect(const char *conninfo)
{
    /* defaults first: whatever the conninfo says wins */
    const char *keys[] = {"connect_timeout",
                          "application_name",
                          "client_encoding",
                          "keepalives_idle",
                          "keepalives_interval",
                          "dbname",
                          NULL};
    const char *vals[] = {"5", "ehr", "UTF8", "30", "10", conninfo, NULL};
    return PQconnectdbParams(keys, vals, 1);
}

/*
 * Make sure the session is usable; outside a transaction, a dead one is
 * replaced. Inside one, a dead session is a failed transaction.
 */
static ehr_status ensure(struct pg_conn *c, ehr_err *err)
{
    if (PQstatus(c->pg) == CONNECTION_OK)
        return EHR_OK;
    if (c->in_tx)
        return ehr_err_set(err, EHR_EBUSY,
                           "the connection to the database was lost during a transaction");
    c->commit_inflight = false;
    PQreset(c->pg);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        char m[256];
        snprintf(m, sizeof m, "%s", PQerrorMessage(c->pg));
        m[strcspn(m, "\n")] = '\0';
        return ehr_err_set(err, EHR_EBUSY, "the database is unavailable: %s", m);
    }
    ehr_log(EHR_LOG_INFO, "store: reconnected to PostgreSQL");
    return session_setup(c, err);
}

/*
 * A read transaction's COMMIT is sent without waiting for its answer (a
 * read has nothing to lose; the snapshot is released as soon as the server
 * reads it): the answer is read here, before the session's next command.
 */
static void drain(struct pg_conn *c)
{
    if (!c->commit_inflight)
        return;
    c->commit_inflight = false;
    PGresult *r;
    while ((r = PQgetResult(c->pg)))
        PQclear(r);
}

static bool result_ok(PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

/*
 * Transaction control is deferred: BEGIN (with the write lock and the
 * audit chain head), SAVEPOINT, RELEASE and ROLLBACK TO are queued on the
 * connection and sent in one pipeline (libpq pipeline mode) with the next
 * statement, or with COMMIT: a write job costs a round trip per statement
 * it runs, not per control command.
 */
static void defer(struct pg_conn *c, const char *sql)
{
    if (c->n_pending < PG_MAX_PENDING)
        c->pending[c->n_pending++] = sql;
    else
        c->pending_overflow = true;
}

/* The statement sent after the queued ones. */
struct mainq {
    const char *name;        /* prepared statement name, or NULL for sql */
    const char *prepare_sql; /* when the name must be prepared first */
    const char *sql;
    int n;
    const char *const *vals;
    const int *lens, *fmts;
};

/* Read the results of one pipelined query into *keep (the last non-NULL)
   or note its failure. */
static void pipe_results(struct pg_conn *c, PGresult **keep, PGresult **fail)
{
    PGresult *r;
    while ((r = PQgetResult(c->pg))) {
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
            if (keep) {
                PQclear(*keep);
                *keep = r;
            } else
                PQclear(r);
        } else if (!*fail && s != PGRES_PIPELINE_ABORTED) {
            *fail = r;
        } else
            PQclear(r);
    }
}

/* Send the queued commands and m (may be NULL) in one pipeline. */
static PGresult *pipeline(struct pg_conn *c, const struct mainq *m, PGresult **fail)
{
    *fail = NULL;
    if (!PQenterPipelineMode(c->pg))
        return NULL;
    int sent = 0;
    bool ok = true;
    for (int i = 0; ok && i < c->n_pending; i++, sent++)
        ok = PQsendQueryParams(c->pg, c->pending[i], 0, NULL, NULL, NULL, NULL, 0);
    bool prep = false;
    if (ok && m && m->prepare_sql) {
        ok = PQsendPrepare(c->pg, m->name, m->prepare_sql, 0, NULL);
        prep = ok;
    }
    if (ok && m)
        ok = m->name ? PQsendQueryPrepared(c->pg, m->name, m->n, m->vals, m->lens, m->fmts, 0)
                     : PQsendQueryParams(c->pg, m->sql, m->n, NULL, m->vals, m->lens, m->fmts, 0);
    if (ok)
        ok = PQpipelineSync(c->pg);
    PGresult *main_r = NULL;
    if (ok) {
        for (int i = 0; i < sent; i++)
            pipe_results(c, NULL, fail);
        if (prep)
            pipe_results(c, NULL, fail);
        if (m)
            pipe_results(c, &main_r, fail);
        PGresult *r = PQgetResult(c->pg); /* the sync */
        PQclear(r);
    }
    if (!PQexitPipelineMode(c->pg)) {
        /* results left unread (the session broke while sending): start
           afresh; the transaction, if any, is lost and reported so */
        c->commit_inflight = false;
        PQreset(c->pg);
        memset(c->prepared, 0, sizeof c->prepared);
        if (PQstatus(c->pg) == CONNECTION_OK)
            session_setup(c, NULL);
        ok = false;
    }
    if (!ok || *fail) {
        PQclear(main_r);
        return NULL;
    }
    return main_r ? main_r : PQmakeEmptyPGresult(c->pg, PGRES_COMMAND_OK);
}

/*
 * Run m after the queued commands. Returns its result (caller PQclear) or
 * NULL with *st set. A dead session is replaced and the whole retried once
 * when nothing can have been applied: a transaction not yet begun on the
 * server, or a read outside any transaction.
 */
static PGresult *exec_main(struct pg_conn *c, const struct mainq *m, bool read_only,
                           enum pg_stmt id, ehr_status *st, ehr_err *err, const char *what)
{
    drain(c);
    if (c->pending_overflow) {
        *st = ehr_err_set(err, EHR_EINTERNAL, "too many nested savepoints");
        return NULL;
    }
    for (int attempt = 0;; attempt++) {
        bool fresh = c->in_tx && !c->tx_started; /* BEGIN is among the queued */
        if (PQstatus(c->pg) != CONNECTION_OK && (!c->in_tx || fresh)) {
            bool saved = c->in_tx;
            c->in_tx = false;
            *st = ensure(c, err);
            c->in_tx = saved;
            if (*st)
                return NULL;
        } else if (PQstatus(c->pg) != CONNECTION_OK) {
            *st = ehr_err_set(err, EHR_EBUSY,
                              "the connection to the database was lost during a transaction");
            return NULL;
        }
        struct mainq mm;
        if (m) {
            mm = *m;
            if (mm.name && id < PS_COUNT && !c->prepared[id])
                mm.prepare_sql = mm.sql;
            m = &mm;
        }
        PGresult *r, *fail = NULL;
        if (c->n_pending == 0 && m && !m->prepare_sql)
            r = m->name ? PQexecPrepared(c->pg, m->name, m->n, m->vals, m->lens, m->fmts, 0)
                        : PQexecParams(c->pg, m->sql, m->n, NULL, m->vals, m->lens, m->fmts, 0);
        else
            r = pipeline(c, m, &fail);
        if (r && !result_ok(r)) {
            fail = r;
            r = NULL;
        }
        if (r) {
            if (m && m->prepare_sql)
                c->prepared[id] = true;
            c->n_pending = 0;
            if (c->in_tx)
                c->tx_started = true;
            *st = EHR_OK;
            return r;
        }
        bool lost = PQstatus(c->pg) != CONNECTION_OK;
        if (lost && attempt == 0 && (fresh || (read_only && !c->in_tx))) {
            PQclear(fail);
            continue; /* once, on a new session: nothing was applied */
        }
        c->n_pending = 0;
        if (c->in_tx)
            c->tx_started = true; /* whatever ran, the caller rolls back */
        *st = pg_fail(c, fail, err, what);
        return NULL;
    }
}

PGresult *pg_prepared(struct pg_conn *c, enum pg_stmt id, int n, const char *const *vals,
                      const int *lens, const int *fmts, bool read_only, ehr_status *st,
                      ehr_err *err, const char *what)
{
    struct pg_store *s = (struct pg_store *)c->base.store;
    char name[16];
    snprintf(name, sizeof name, "e%d", (int)id);
    struct mainq m = {.name = name,
                      .sql = id == PS_PUT       ? s->put_sql
                             : id == PS_REINDEX ? s->reindex_sql
                                                : ehr_pg__query_sql[id],
                      .n = n,
                      .vals = vals,
                      .lens = lens,
                      .fmts = fmts};
    return exec_main(c, &m, read_only, id, st, err, what);
}

PGresult *pg_dynamic(struct pg_conn *c, struct pg_q *q, bool read_only, ehr_status *st,
                     ehr_err *err, const char *what)
{
    if (q->oom || !q->sql.data) {
        *st = ehr_err_set(err, EHR_ENOMEM, "out of memory");
        return NULL;
    }
    if (q->n > 60000) {
        *st = ehr_err_set(err, EHR_ELIMIT, "the query has too many values (at most 60000)");
        return NULL;
    }
    struct mainq m = {.sql = q->sql.data, .n = q->n, .vals = q->vals};
    return exec_main(c, &m, read_only, PS_COUNT, st, err, what);
}

/* Run a command without parameters (simple protocol; may hold several). */
static ehr_status simple(struct pg_conn *c, const char *sql, ehr_err *err, const char *what)
{
    drain(c);
    PGresult *r = PQexec(c->pg, sql);
    if (!result_ok(r))
        return pg_fail(c, r, err, what);
    PQclear(r);
    return EHR_OK;
}

/* -- open, migrate, connect -------------------------------------------- */

/*
 * The put statement (and, reindex true, the reindex statement), from the
 * kind table (pg_int.h). Parameters: $1 type, $2 id, $3 version, $4
 * last_updated, $5 deleted, $6 method, $7 content, $8 the patients (text[]),
 * then one array per column of each kind, in table order.
 */
static char *build_write_sql(bool reindex)
{
    ehr_buf b = EHR_BUF_INIT;
    if (!reindex)
        ehr_buf_puts(&b,
                     "WITH r AS (INSERT INTO resource(type, id, version, last_updated, deleted, "
                     "method, content) VALUES ($1::text, $2::text, $3::bigint, $4::bigint, "
                     "$5::boolean, $6::text, $7::text) RETURNING rid),\n"
                     "cur AS (INSERT INTO current(type, id, rid, version, last_updated, deleted) "
                     "SELECT $1::text, $2::text, rid, $3::bigint, $4::bigint, $5::boolean FROM r "
                     "ON CONFLICT (type, id) DO UPDATE SET rid = excluded.rid, "
                     "version = excluded.version, last_updated = excluded.last_updated, "
                     "deleted = excluded.deleted RETURNING key, rid, deleted),\n"
                     /* a deletion keeps the compartment of the version it deletes */
                     "vc AS (INSERT INTO version_compartment(rid, patient) SELECT DISTINCT "
                     "cur.rid, p.patient FROM cur, (SELECT unnest($8::text[]) AS patient UNION "
                     "SELECT v.patient FROM resource o JOIN version_compartment v ON v.rid = "
                     "o.rid WHERE $5::boolean AND o.type = $1::text AND o.id = $2::text "
                     "AND o.version = $3::bigint - 1) p ON CONFLICT DO NOTHING),\n");
    else
        ehr_buf_puts(&b, "WITH cur AS (SELECT key, rid, deleted FROM current WHERE type = $1::text "
                         "AND id = $2::text),\n"
                         /* typed, unused: the statement has the put's parameters */
                         "unused AS (SELECT $3::bigint, $4::bigint, $5::boolean, $6::text, "
                         "$7::text),\n"
                         "vc AS (INSERT INTO version_compartment(rid, patient) SELECT DISTINCT "
                         "cur.rid, p FROM cur, unnest($8::text[]) p WHERE NOT cur.deleted "
                         "ON CONFLICT DO NOTHING),\n");
    /* compartment rows: drop those not kept, add the new ones (the parts of
       one statement see one snapshot, so their order does not matter) */
    const char *replace = reindex ? "true" : "$3::bigint > 1";
    ehr_buf_printf(&b,
                   "xc AS (DELETE FROM compartment WHERE %s AND key = (SELECT key FROM cur) "
                   "AND ((SELECT deleted FROM cur) OR patient <> ALL ($8::text[]))),\n"
                   "ic AS (INSERT INTO compartment(patient, key) SELECT DISTINCT p, cur.key "
                   "FROM cur, unnest($8::text[]) p WHERE NOT cur.deleted ON CONFLICT DO NOTHING)",
                   replace);
    int p = 9;
    for (int k = 0; k < PG_N_KINDS; k++) {
        const struct pg_kind *kd = &ehr_pg__kinds[k];
        /* the old rows are deleted and the new inserted in one statement:
           the DELETE does not see rows inserted by its sibling */
        ehr_buf_printf(&b, ",\nx%d AS (DELETE FROM %s WHERE %s AND key = (SELECT key FROM cur))", k,
                       kd->table, replace);
        ehr_buf_printf(&b, ",\ni%d AS (INSERT INTO %s(key, type", k, kd->table);
        for (int j = 0; j < kd->n_cols; j++)
            ehr_buf_printf(&b, ", %s", kd->cols[j].name);
        ehr_buf_puts(&b, ") SELECT cur.key, $1::text, u.* FROM cur, unnest(");
        for (int j = 0; j < kd->n_cols; j++)
            ehr_buf_printf(&b, "%s$%d::%s[]", j ? ", " : "", p++, kd->cols[j].sqltype);
        ehr_buf_puts(&b, ") u WHERE NOT cur.deleted)");
    }
    ehr_buf_puts(&b, "\nSELECT key FROM cur");
    return b.data;
}

static ehr_status migrate(struct pg_conn *c, ehr_err *err)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%d, %d)", LOCK_NS, LOCK_MIGRATE);
    ehr_status st = simple(c, sql, err, "waiting for the migration lock");
    if (st)
        return st;
    st = simple(c,
                "CREATE TABLE IF NOT EXISTS ehr_schema(one int PRIMARY KEY CHECK (one = 1),"
                " version int NOT NULL);"
                "INSERT INTO ehr_schema VALUES (1, 0) ON CONFLICT DO NOTHING",
                err, "creating the schema version table");
    if (!st)
        st = simple(c, "BEGIN", err, "starting migrations");
    int version = 0;
    if (!st) {
        PGresult *r = PQexec(c->pg, "SELECT version FROM ehr_schema FOR UPDATE");
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
            st = pg_fail(c, r, err, "reading the schema version");
        else {
            version = atoi(PQgetvalue(r, 0, 0));
            PQclear(r);
        }
    }
    if (!st && version > (int)N_MIGRATIONS)
        st = ehr_err_set(err, EHR_EUNSUPPORTED,
                         "the database has schema version %d, newer than this program knows "
                         "(%zu); upgrade ehr",
                         version, N_MIGRATIONS);
    for (size_t i = (size_t)version; !st && i < N_MIGRATIONS; i++) {
        if (!(st = simple(c, migrations[i], err, "applying a schema migration")))
            ehr_log(EHR_LOG_INFO, "store: applied PostgreSQL schema migration %zu", i + 1);
    }
    if (!st && version < (int)N_MIGRATIONS) {
        snprintf(sql, sizeof sql, "UPDATE ehr_schema SET version = %zu", N_MIGRATIONS);
        st = simple(c, sql, err, "recording the schema version");
    }
    if (!st)
        st = simple(c, "COMMIT", err, "finishing migrations");
    if (st)
        simple(c, "ROLLBACK", NULL, "");
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%d, %d)", LOCK_NS, LOCK_MIGRATE);
    simple(c, sql, NULL, "");
    return st;
}

static ehr_status p_connect(ehr_store *base, ehr_store_conn **out, ehr_err *err);
static void p_disconnect(ehr_store_conn *base);
extern const struct ehr_store_ops ehr_store_postgres_ops;

static ehr_status p_open(const char *target, ehr_store **out, ehr_err *err)
{
    struct pg_store *s = calloc(1, sizeof *s);
    if (!s || !(s->conninfo = strdup(target)) || !(s->put_sql = build_write_sql(false)) ||
        !(s->reindex_sql = build_write_sql(true))) {
        if (s) {
            free(s->conninfo);
            free(s->put_sql);
        }
        free(s);
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    }
    s->base.ops = &ehr_store_postgres_ops;
    ehr_store_conn *c = NULL;
    ehr_status st = p_connect(&s->base, &c, err);
    if (!st) {
        st = migrate((struct pg_conn *)c, err);
        p_disconnect(c);
    }
    if (st) {
        free(s->put_sql);
        free(s->reindex_sql);
        free(s->conninfo);
        free(s);
        return st;
    }
    *out = &s->base;
    return EHR_OK;
}

static void p_close(ehr_store *base)
{
    struct pg_store *s = (struct pg_store *)base;
    free(s->put_sql);
    free(s->reindex_sql);
    free(s->conninfo);
    free(s);
}

static ehr_status p_connect(ehr_store *base, ehr_store_conn **out, ehr_err *err)
{
    struct pg_store *s = (struct pg_store *)base;
    struct pg_conn *c = calloc(1, sizeof *c);
    if (!c)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    c->base.store = base;
    c->sync_full = true;
    c->pg = pg_connect(s->conninfo);
    if (!c->pg) {
        free(c);
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    }
    if (PQstatus(c->pg) != CONNECTION_OK) {
        char m[256];
        snprintf(m, sizeof m, "%s", PQerrorMessage(c->pg));
        m[strcspn(m, "\n")] = '\0';
        PQfinish(c->pg);
        free(c);
        return ehr_err_set(err, EHR_EBUSY, "cannot connect to PostgreSQL: %s", m);
    }
    ehr_status st = session_setup(c, err);
    if (st) {
        PQfinish(c->pg);
        free(c);
        return st;
    }
    *out = &c->base;
    return EHR_OK;
}

static void p_disconnect(ehr_store_conn *base)
{
    struct pg_conn *c = (struct pg_conn *)base;
    PQfinish(c->pg);
    free(c);
}

/* -- transactions ------------------------------------------------------ */

#define STR_(x) #x
#define STR(x) STR_(x)

static ehr_status p_begin(ehr_store_conn *base, bool write, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    if (c->in_tx)
        return ehr_err_set(err, EHR_EINTERNAL, "a transaction is already open");
    c->n_pending = 0;
    c->pending_overflow = false;
    if (write) {
        defer(c, "BEGIN ISOLATION LEVEL READ COMMITTED");
        if (!c->sync_full)
            defer(c, "SET LOCAL synchronous_commit = off");
        defer(c, "SELECT pg_advisory_xact_lock(" STR(LOCK_NS) ", " STR(LOCK_WRITE) ")");
    } else {
        defer(c, "BEGIN ISOLATION LEVEL REPEATABLE READ");
    }
    c->in_tx = true;
    c->tx_started = false;
    c->write_tx = write;
    return EHR_OK;
}

static void end_tx(struct pg_conn *c)
{
    c->in_tx = false;
    c->tx_started = false;
    c->write_tx = false;
    c->n_pending = 0;
    c->pending_overflow = false;
}

static ehr_status p_commit(ehr_store_conn *base, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    ehr_status st = EHR_OK;
    if (!c->tx_started) {
        end_tx(c); /* nothing was sent: nothing to commit */
        return EHR_OK;
    }
    if (!c->write_tx && c->n_pending == 0 && PQstatus(c->pg) == CONNECTION_OK &&
        PQsendQuery(c->pg, "COMMIT")) {
        c->commit_inflight = true; /* read by drain() */
        end_tx(c);
        return EHR_OK;
    }
    struct mainq m = {.sql = "COMMIT"};
    PGresult *r = exec_main(c, &m, false, PS_COUNT, &st, err, "committing");
    /* COMMIT of a failed transaction answers ROLLBACK: not a success */
    if (r && strcmp(PQcmdStatus(r), "COMMIT") != 0)
        st = ehr_err_set(err, EHR_EIO, "committing: the transaction had failed and was undone");
    PQclear(r);
    if (st && PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        simple(c, "ROLLBACK", NULL, "rolling back");
    end_tx(c);
    return st;
}

static void p_rollback(ehr_store_conn *base)
{
    struct pg_conn *c = (struct pg_conn *)base;
    drain(c);
    if (PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        simple(c, "ROLLBACK", NULL, "rolling back");
    end_tx(c);
}

static ehr_status p_savepoint(ehr_store_conn *base, ehr_err *err)
{
    defer((struct pg_conn *)base, "SAVEPOINT part");
    return EHR_OK;
}

static ehr_status p_release(ehr_store_conn *base, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    /* a savepoint nothing ran in: drop both */
    if (c->n_pending && !strcmp(c->pending[c->n_pending - 1], "SAVEPOINT part"))
        c->n_pending--;
    else
        defer(c, "RELEASE part");
    return EHR_OK;
}

static ehr_status p_rollback_to(ehr_store_conn *base, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    if (c->n_pending && !strcmp(c->pending[c->n_pending - 1], "SAVEPOINT part")) {
        c->n_pending--;
        return EHR_OK;
    }
    defer(c, "ROLLBACK TO part");
    defer(c, "RELEASE part");
    return EHR_OK;
}

/* -- reading and writing resources ------------------------------------- */

/* Columns: version, last_updated, deleted, method, content. */
static ehr_status lookup(struct pg_conn *c, enum pg_stmt id, int n, const char *const *vals,
                         ehr_store_rec *rec, ehr_buf *content, ehr_err *err)
{
    ehr_status st;
    PGresult *r = pg_prepared(c, id, n, vals, NULL, NULL, true, &st, err, "reading a resource");
    if (!r)
        return st;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return EHR_ENOTFOUND;
    }
    rec->version = pg_get_i64(r, 0, 0);
    rec->last_updated = pg_get_i64(r, 0, 1);
    rec->deleted = PQgetvalue(r, 0, 2)[0] == 't';
    rec->method = NULL;
    rec->content = NULL;
    rec->content_len = 0;
    if (content) {
        ehr_buf_reset(content);
        if (!PQgetisnull(r, 0, 4) &&
            ehr_buf_append(content, PQgetvalue(r, 0, 4), (size_t)PQgetlength(r, 0, 4))) {
            PQclear(r);
            return ehr_err_set(err, EHR_ENOMEM, "out of memory");
        }
        rec->content = content->data;
        rec->content_len = content->len;
    }
    PQclear(r);
    return EHR_OK;
}

static ehr_status p_current(ehr_store_conn *base, const char *type, const char *id,
                            ehr_store_rec *rec, ehr_buf *content, ehr_err *err)
{
    const char *v[] = {type, id};
    rec->type = type;
    rec->id = id;
    return lookup((struct pg_conn *)base, PS_CURRENT, 2, v, rec, content, err);
}

static ehr_status p_version(ehr_store_conn *base, const char *type, const char *id, int64_t version,
                            ehr_store_rec *rec, ehr_buf *content, ehr_err *err)
{
    char vb[24];
    const char *v[] = {type, id, pg_i64(vb, version)};
    rec->type = type;
    rec->id = id;
    return lookup((struct pg_conn *)base, PS_VERSION, 3, v, rec, content, err);
}

/* The value of field f of v as text (NULL for SQL NULL). */
static const char *field_text(const struct ehr_store_value *v, enum pg_field f, char tmp[40])
{
    switch (f) {
    case PF_PARAM:
        return v->param;
    case PF_S1:
        return v->s1;
    case PF_S2:
        return v->s2;
    case PF_S3:
        return v->s3;
    case PF_NUM:
        real_text(tmp, 40, v->num);
        return tmp;
    case PF_LO:
        return pg_i64(tmp, v->lo);
    case PF_HI:
        return pg_i64(tmp, v->hi);
    case PF_GRP:
        return pg_i64(tmp, v->grp);
    }
    return NULL;
}

#define PUT_FIXED 8
#define PUT_MAX_PARAMS (PUT_FIXED + PG_N_KINDS * 5)

static ehr_status write_rows(struct pg_conn *c, enum pg_stmt id, const ehr_store_rec *rec,
                             const ehr_store_index *idx, ehr_err *err)
{
    const char *vals[PUT_MAX_PARAMS] = {0};
    int lens[PUT_MAX_PARAMS] = {0}, fmts[PUT_MAX_PARAMS] = {0};
    ehr_buf arrays[PUT_MAX_PARAMS];
    for (int i = 0; i < PUT_MAX_PARAMS; i++)
        arrays[i] = (ehr_buf)EHR_BUF_INIT;
    char vb[24], tb[24];
    vals[0] = rec->type;
    vals[1] = rec->id;
    vals[2] = pg_i64(vb, rec->version);
    vals[3] = pg_i64(tb, rec->last_updated);
    vals[4] = rec->deleted ? "t" : "f";
    vals[5] = rec->method ? rec->method : "";
    if (rec->content) {
        /* binary format of text: the bytes themselves, with their length */
        vals[6] = rec->content;
        lens[6] = (int)rec->content_len;
        fmts[6] = 1;
    }
    ehr_status st =
        pg_array_literal(&arrays[7], idx ? idx->patients : NULL, idx ? idx->n_patients : 0);
    int p = PUT_FIXED;
    for (int k = 0; !st && k < PG_N_KINDS; k++) {
        const struct pg_kind *kd = &ehr_pg__kinds[k];
        for (int j = 0; !st && j < kd->n_cols; j++, p++) {
            ehr_buf *b = &arrays[p];
            st = ehr_buf_putc(b, '{');
            size_t n = 0;
            for (size_t i = 0; !st && idx && i < idx->n_values; i++) {
                const struct ehr_store_value *v = &idx->values[i];
                if ((int)v->kind != k)
                    continue;
                char tmp[40];
                if (n++)
                    st = ehr_buf_putc(b, ',');
                if (!st)
                    st = array_elem(b, field_text(v, kd->cols[j].field, tmp));
            }
            if (!st)
                st = ehr_buf_putc(b, '}');
        }
    }
    for (int i = 7; i < p; i++)
        vals[i] = arrays[i].data;
    PGresult *r = NULL;
    if (st)
        st = ehr_err_set(err, EHR_ENOMEM, "out of memory");
    else
        r = pg_prepared(c, id, p, vals, lens, fmts, false, &st, err,
                        id == PS_PUT ? "writing a resource" : "reindexing a resource");
    if (r && PQntuples(r) == 0)
        st = ehr_err_set(err, EHR_ENOTFOUND, "%s/%s does not exist", rec->type, rec->id);
    PQclear(r);
    for (int i = 0; i < PUT_MAX_PARAMS; i++)
        ehr_buf_free(&arrays[i]);
    return st;
}

static ehr_status p_put(ehr_store_conn *base, const ehr_store_rec *rec, const ehr_store_index *idx,
                        ehr_err *err)
{
    return write_rows((struct pg_conn *)base, PS_PUT, rec, idx, err);
}

static ehr_status p_reindex(ehr_store_conn *base, const char *type, const char *id,
                            const ehr_store_index *idx, ehr_err *err)
{
    ehr_store_rec rec = {.type = type, .id = id, .version = 1, .method = ""};
    return write_rows((struct pg_conn *)base, PS_REINDEX, &rec, idx, err);
}

/* -- the audit chain ---------------------------------------------------- */

/* SHA-256 over prev_hash, seq, time and the event, as lowercase hex (as sqlite.c). */
static void audit_hash(const char *prev, int64_t seq, int64_t time, const char *event, size_t len,
                       char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char head[128];
    int n = snprintf(head, sizeof head, "%s|%lld|%lld|", prev, (long long)seq, (long long)time);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, head, (size_t)n);
    EVP_DigestUpdate(ctx, event, len);
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/*
 * One record, chained by the server: the INSERT reads the head (its own
 * transaction's records included) and computes the hash exactly as
 * audit_hash does, so one round trip appends and several records in one
 * transaction chain in order. The write lock keeps other writers out.
 */
static ehr_status append_locked(struct pg_conn *c, int64_t time, const char *event, size_t len,
                                ehr_err *err)
{
    char tb[24];
    const char *vals[] = {pg_i64(tb, time), event};
    int lens[] = {0, (int)len};
    int fmts[] = {0, 1};
    ehr_status st;
    PGresult *r = pg_prepared(c, PS_AUDIT_INSERT, 2, vals, lens, fmts, false, &st, err,
                              "appending to the audit log");
    PQclear(r);
    return st;
}

static ehr_status p_audit_append(ehr_store_conn *base, int64_t time, const char *event, size_t len,
                                 ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    if (c->write_tx)
        return append_locked(c, time, event, len, err);
    if (c->in_tx)
        return ehr_err_set(err, EHR_EINTERNAL,
                           "an audit record cannot be appended inside a read transaction");
    /* on its own: a write transaction of one record */
    ehr_status st = p_begin(base, true, err);
    if (st)
        return st;
    if ((st = append_locked(c, time, event, len, err))) {
        p_rollback(base);
        return st;
    }
    return p_commit(base, err);
}

static ehr_status p_audit_verify(ehr_store_conn *base, int64_t *n_records, int64_t *bad_seq,
                                 ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    *n_records = 0;
    *bad_seq = 0;
    char prev[65] = GENESIS;
    int64_t expect = 1;
    ehr_status res = EHR_OK;
    /* in pages, by seq: memory stays flat however long the log */
    for (bool more = true; more && !res;) {
        struct pg_q q;
        pgq_init(&q);
        ehr_buf_printf(&q.sql,
                       "SELECT seq, time, prev_hash, hash, event FROM audit WHERE seq >= $%d "
                       "ORDER BY seq LIMIT 5000",
                       pgq_int(&q, expect));
        PGresult *r = pg_dynamic(c, &q, true, &res, err, "reading the audit log");
        pgq_free(&q);
        if (!r)
            break;
        int n = PQntuples(r);
        more = n == 5000;
        for (int i = 0; i < n; i++) {
            int64_t seq = pg_get_i64(r, i, 0);
            const char *p = PQgetvalue(r, i, 2), *h = PQgetvalue(r, i, 3);
            char want[65];
            audit_hash(prev, seq, pg_get_i64(r, i, 1), PQgetvalue(r, i, 4),
                       (size_t)PQgetlength(r, i, 4), want);
            if (seq != expect) {
                *bad_seq = expect;
                res = ehr_err_set(err, EHR_EINVAL,
                                  "audit record %lld is missing (the next record is %lld)",
                                  (long long)expect, (long long)seq);
                break;
            }
            if (strcmp(p, prev) || strcmp(h, want)) {
                *bad_seq = seq;
                res = ehr_err_set(err, EHR_EINVAL,
                                  "audit record %lld does not match the chain (%s)", (long long)seq,
                                  strcmp(p, prev) ? "its link to the record before is wrong"
                                                  : "its content or hash was changed");
                break;
            }
            snprintf(prev, sizeof prev, "%s", h);
            expect++;
            (*n_records)++;
        }
        PQclear(r);
    }
    return res;
}

/* -- durability ---------------------------------------------------------- */

static ehr_status p_set_sync(ehr_store_conn *base, bool full, ehr_err *err)
{
    /* applied at the next write BEGIN (SET LOCAL synchronous_commit = off):
       such a commit is in the server's memory at once, on its disk within
       three wal_writer_delay periods (600 ms by default), or at the next
       durable commit */
    ((struct pg_conn *)base)->sync_full = full;
    return EHR_OK;
}

static ehr_status p_flush(ehr_store_conn *base, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    if (c->in_tx)
        return EHR_OK;
    ehr_status st = ensure(c, err);
    /* a durable commit with a transaction id flushes the log up to it,
       taking the asynchronous commits before it along */
    return st ? st : simple(c, "SELECT txid_current()", err, "flushing the log");
}

const struct ehr_store_ops ehr_store_postgres_ops = {
    .name = "postgres",
    .open = p_open,
    .close = p_close,
    .connect = p_connect,
    .disconnect = p_disconnect,
    .begin = p_begin,
    .commit = p_commit,
    .rollback = p_rollback,
    .savepoint = p_savepoint,
    .release = p_release,
    .rollback_to = p_rollback_to,
    .current = p_current,
    .version = p_version,
    .put = p_put,
    .history = ehr_pg__history,
    .search = ehr_pg__search,
    .audit_append = p_audit_append,
    .audit_verify = p_audit_verify,
    .compartment_of = ehr_pg__compartment_of,
    .audit_list = ehr_pg__audit_list,
    .obj_get = ehr_pg__obj_get,
    .obj_put = ehr_pg__obj_put,
    .obj_del = ehr_pg__obj_del,
    .obj_list = ehr_pg__obj_list,
    .obj_purge = ehr_pg__obj_purge,
    .set_sync = p_set_sync,
    .flush = p_flush,
    .reindex = p_reindex,
    .scan = ehr_pg__scan,
    .hl7_put = ehr_pg__hl7_put,
    .hl7_update = ehr_pg__hl7_update,
    .hl7_list = ehr_pg__hl7_list,
    .audit_applied_get = ehr_pg__audit_applied_get,
    .audit_applied_set = ehr_pg__audit_applied_set,
};

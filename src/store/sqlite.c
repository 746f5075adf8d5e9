/*
 * sqlite.c - the embedded SQLite backend of store.h.
 *
 * One database file in WAL mode; one connection per thread (ehr_store_conn),
 * each with its own cache of prepared statements. Writers take the write
 * lock at BEGIN (BEGIN IMMEDIATE), so read-check-write sequences such as
 * If-Match and conditional create are serialised without races. Commits
 * are durable (synchronous=FULL): an acknowledged write survives a crash of
 * the process or of the machine.
 */
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store/sqlite_int.h"

struct sqlite_store {
    ehr_store base;
    char *path;
};

enum stmt_id {
    ST_BEGIN_READ,
    ST_BEGIN_WRITE,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_CURRENT,
    ST_VERSION,
    ST_INSERT_RESOURCE,
    ST_UPSERT_CURRENT,
    ST_DEL_STRING,
    ST_DEL_TOKEN,
    ST_DEL_DATE,
    ST_DEL_REFERENCE,
    ST_DEL_QUANTITY,
    ST_DEL_NUMBER,
    ST_DEL_URI,
    ST_DEL_TEXT,
    ST_DEL_COMPARTMENT,
    ST_INS_STRING,
    ST_INS_TOKEN,
    ST_INS_DATE,
    ST_INS_REFERENCE,
    ST_INS_QUANTITY,
    ST_INS_NUMBER,
    ST_INS_URI,
    ST_INS_TEXT,
    ST_INS_COMPARTMENT,
    ST_AUDIT_LAST,
    ST_AUDIT_INSERT,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN_READ] = "BEGIN DEFERRED",
    [ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT part",
    [ST_RELEASE] = "RELEASE part",
    [ST_ROLLBACK_TO] = "ROLLBACK TO part",
    [ST_CURRENT] =
        "SELECT r.version, r.last_updated, r.deleted, r.method, r.content "
        "FROM current c JOIN resource r ON r.rid = c.rid WHERE c.type = ?1 AND c.id = ?2",
    [ST_VERSION] = "SELECT version, last_updated, deleted, method, content FROM resource "
                   "WHERE type = ?1 AND id = ?2 AND version = ?3",
    [ST_INSERT_RESOURCE] = "INSERT INTO resource(type, id, version, last_updated, deleted, method, "
                           "content) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_UPSERT_CURRENT] =
        "INSERT INTO current(type, id, rid, version, last_updated, deleted) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(type, id) DO UPDATE SET rid = excluded.rid, "
        "version = excluded.version, last_updated = excluded.last_updated, "
        "deleted = excluded.deleted RETURNING key",
    [ST_DEL_STRING] = "DELETE FROM idx_string WHERE key = ?1",
    [ST_DEL_TOKEN] = "DELETE FROM idx_token WHERE key = ?1",
    [ST_DEL_DATE] = "DELETE FROM idx_date WHERE key = ?1",
    [ST_DEL_REFERENCE] = "DELETE FROM idx_reference WHERE key = ?1",
    [ST_DEL_QUANTITY] = "DELETE FROM idx_quantity WHERE key = ?1",
    [ST_DEL_NUMBER] = "DELETE FROM idx_number WHERE key = ?1",
    [ST_DEL_URI] = "DELETE FROM idx_uri WHERE key = ?1",
    /* full text rows are keyed by rowid: key * 2 (_text), key * 2 + 1 (_content) */
    [ST_DEL_TEXT] = "DELETE FROM idx_text WHERE rowid IN (?1 * 2, ?1 * 2 + 1)",
    [ST_DEL_COMPARTMENT] = "DELETE FROM compartment WHERE key = ?1",
    [ST_INS_STRING] =
        "INSERT INTO idx_string(key, type, param, norm, exact, grp) VALUES (?1,?2,?3,?4,?5,?9)",
    [ST_INS_TOKEN] = "INSERT INTO idx_token(key, type, param, system, code, text, grp) "
                     "VALUES (?1,?2,?3,?4,?5,?6,?9)",
    [ST_INS_DATE] =
        "INSERT INTO idx_date(key, type, param, lo, hi, grp) VALUES (?1,?2,?3,?4,?5,?9)",
    [ST_INS_REFERENCE] =
        "INSERT INTO idx_reference(key, type, param, target_type, target_id, url, grp) "
        "VALUES (?1,?2,?3,?4,?5,?6,?9)",
    [ST_INS_QUANTITY] = "INSERT INTO idx_quantity(key, type, param, value, system, code, grp) "
                        "VALUES (?1,?2,?3,?4,?5,?6,?9)",
    [ST_INS_NUMBER] =
        "INSERT INTO idx_number(key, type, param, value, grp) VALUES (?1,?2,?3,?4,?9)",
    [ST_INS_URI] = "INSERT INTO idx_uri(key, type, param, uri, grp) VALUES (?1,?2,?3,?4,?9)",
    [ST_INS_TEXT] = "INSERT OR REPLACE INTO idx_text(rowid, body) "
                    "VALUES (?1 * 2 + (?3 = '_content'), ?4)",
    [ST_INS_COMPARTMENT] = "INSERT OR IGNORE INTO compartment(patient, key) VALUES (?1, ?2)",
    [ST_AUDIT_LAST] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
    [ST_AUDIT_INSERT] =
        "INSERT INTO audit(seq, time, prev_hash, hash, event) VALUES (?1,?2,?3,?4,?5)",
};

struct sqlite_conn {
    ehr_store_conn base;
    sqlite3 *db;
    sqlite3_stmt *stmts[ST_COUNT];
    struct sqlite_xconn x; /* sqlite_access.c */
};

struct sqlite_xconn *ehr_sqlite__xconn(ehr_store_conn *base)
{
    return &((struct sqlite_conn *)base)->x;
}

/* Versioned migrations: index i brings the schema from version i to i+1. */
static const char *const migrations[] = {
    /* 1: the logical schema of DESIGN.md */
    "CREATE TABLE resource ("
    "  rid INTEGER PRIMARY KEY,"
    "  type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,"
    "  last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,"
    "  method TEXT NOT NULL, content BLOB,"
    "  UNIQUE(type, id, version));"
    "CREATE INDEX resource_type_rid ON resource(type, rid);"
    "CREATE INDEX resource_updated ON resource(last_updated);"
    "CREATE TABLE current ("
    "  key INTEGER PRIMARY KEY,"
    "  type TEXT NOT NULL, id TEXT NOT NULL, rid INTEGER NOT NULL, version INTEGER NOT NULL,"
    "  last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE(type, id));"
    "CREATE INDEX current_type_updated ON current(type, last_updated);"
    "CREATE TABLE idx_string(key INTEGER NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL,"
    "  norm TEXT, exact TEXT);"
    "CREATE INDEX idx_string_v ON idx_string(type, param, norm);"
    "CREATE INDEX idx_string_k ON idx_string(key);"
    "CREATE TABLE idx_token(key INTEGER NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL,"
    "  system TEXT, code TEXT, text TEXT);"
    "CREATE INDEX idx_token_v ON idx_token(type, param, code, system);"
    "CREATE INDEX idx_token_k ON idx_token(key);"
    "CREATE TABLE idx_date(key INTEGER NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL,"
    "  lo INTEGER, hi INTEGER);"
    "CREATE INDEX idx_date_v ON idx_date(type, param, lo, hi);"
    "CREATE INDEX idx_date_k ON idx_date(key);"
    "CREATE TABLE idx_reference(key INTEGER NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL,"
    "  target_type TEXT, target_id TEXT, url TEXT);"
    "CREATE INDEX idx_reference_v ON idx_reference(type, param, target_id, target_type);"
    "CREATE INDEX idx_reference_k ON idx_reference(key);"
    "CREATE TABLE idx_quantity(key INTEGER NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL,"
    "  value REAL, system TEXT, code TEXT);"
    "CREATE INDEX idx_quantity_v ON idx_quantity(type, param, value);"
    "CREATE INDEX idx_quantity_k ON idx_quantity(key);"
    "CREATE TABLE idx_number(key INTEGER NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL,"
    "  value REAL);"
    "CREATE INDEX idx_number_v ON idx_number(type, param, value);"
    "CREATE INDEX idx_number_k ON idx_number(key);"
    "CREATE TABLE idx_uri(key INTEGER NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, uri TEXT);"
    "CREATE INDEX idx_uri_v ON idx_uri(type, param, uri);"
    "CREATE INDEX idx_uri_k ON idx_uri(key);"
    "CREATE TABLE compartment(patient TEXT NOT NULL, key INTEGER NOT NULL,"
    "  PRIMARY KEY(patient, key)) WITHOUT ROWID;"
    "CREATE INDEX compartment_k ON compartment(key);"
    "CREATE TABLE audit(seq INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
    "  prev_hash TEXT NOT NULL, hash TEXT NOT NULL, event TEXT NOT NULL);"
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
    /* 2: access control and auth (src/store/sqlite_access.c). The compartment
       of every version, so history and vread can be limited to a patient as
       the version was then (versions older than this migration are left out
       of limited views); module state (users, sessions, clients, tokens) as
       small JSON documents. */
    "CREATE TABLE version_compartment(rid INTEGER NOT NULL, patient TEXT NOT NULL,"
    "  PRIMARY KEY(rid, patient)) WITHOUT ROWID;"
    "CREATE INDEX version_compartment_p ON version_compartment(patient, rid);"
    "INSERT OR IGNORE INTO version_compartment(rid, patient)"
    "  SELECT c.rid, p.patient FROM compartment p JOIN current c ON c.key = p.key;"
    "CREATE TABLE auth_object(kind TEXT NOT NULL, key TEXT NOT NULL, owner TEXT,"
    "  expires INTEGER NOT NULL DEFAULT 0, doc TEXT NOT NULL,"
    "  PRIMARY KEY(kind, key)) WITHOUT ROWID;"
    "CREATE INDEX auth_object_owner ON auth_object(kind, owner);"
    "CREATE INDEX audit_time ON audit(time);",
    /* 3: search (src/store/sqlite_search.c). Composite items (grp), probes
       by (key, param), :text on token display text. Index rows written
       before this version hold identifiers only: run `ehr reindex`. */
    "ALTER TABLE idx_string ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE idx_token ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE idx_date ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE idx_reference ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE idx_quantity ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE idx_number ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE idx_uri ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;"
    "DROP INDEX idx_string_k; CREATE INDEX idx_string_k ON idx_string(key, param);"
    "DROP INDEX idx_token_k; CREATE INDEX idx_token_k ON idx_token(key, param);"
    "DROP INDEX idx_date_k; CREATE INDEX idx_date_k ON idx_date(key, param);"
    "DROP INDEX idx_reference_k; CREATE INDEX idx_reference_k ON idx_reference(key, param);"
    "DROP INDEX idx_quantity_k; CREATE INDEX idx_quantity_k ON idx_quantity(key, param);"
    "DROP INDEX idx_number_k; CREATE INDEX idx_number_k ON idx_number(key, param);"
    "DROP INDEX idx_uri_k; CREATE INDEX idx_uri_k ON idx_uri(key, param);"
    "CREATE INDEX idx_token_text ON idx_token(type, param, text);"
    "CREATE INDEX idx_quantity_c ON idx_quantity(type, param, code, value);",
    /* 4: HL7 v2 messages, raw, in and out (src/store/sqlite_hl7.c) */
    "CREATE TABLE hl7_message(id INTEGER PRIMARY KEY, direction TEXT NOT NULL,"
    "  peer TEXT NOT NULL, control_id TEXT NOT NULL, type TEXT NOT NULL,"
    "  status TEXT NOT NULL, ack_code TEXT, outcome TEXT,"
    "  received INTEGER NOT NULL, processed INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0, next_try INTEGER NOT NULL DEFAULT 0,"
    "  raw BLOB NOT NULL, ack BLOB, dedup TEXT UNIQUE);"
    "CREATE INDEX hl7_message_status ON hl7_message(direction, status, next_try);",
    /* 5: placeholder for bulk export jobs (its owner replaces it) */
    "SELECT 1;",
    /* 6: the audit journal (src/audit/journal.h): how far its records have
       been applied into the audit table, as (generation, offset); one row */
    "CREATE TABLE audit_journal(id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  generation INTEGER NOT NULL, applied INTEGER NOT NULL);"
    "INSERT INTO audit_journal(id, generation, applied) VALUES (1, 0, 0);",
    /* 7: search, full text of _text and _content (src/store/sqlite_search.c):
       rowid = key * 2 for _text, key * 2 + 1 for _content. Rows appear as
       resources are written, or for all of them with `ehr reindex`. */
    "CREATE VIRTUAL TABLE idx_text USING fts5(body, tokenize = 'unicode61 remove_diacritics 2');"
    /* probes of one resource's values read the index alone (covering) */
    "DROP INDEX idx_token_k; CREATE INDEX idx_token_k ON idx_token(key, param, code, system);"
    "DROP INDEX idx_date_k; CREATE INDEX idx_date_k ON idx_date(key, param, lo, hi);"
    "DROP INDEX idx_string_k; CREATE INDEX idx_string_k ON idx_string(key, param, norm);"
    "DROP INDEX idx_reference_k;"
    "CREATE INDEX idx_reference_k ON idx_reference(key, param, target_type, target_id);"
    "DROP INDEX idx_quantity_k;"
    "CREATE INDEX idx_quantity_k ON idx_quantity(key, param, system, code, value);"
    /* and the lookups that drive a search yield keys without a table read */
    "DROP INDEX idx_token_v; CREATE INDEX idx_token_v ON idx_token(type, param, code, system, key);"
    "DROP INDEX idx_reference_v;"
    "CREATE INDEX idx_reference_v ON idx_reference(type, param, target_id, target_type, key);"
    "DROP INDEX idx_string_v; CREATE INDEX idx_string_v ON idx_string(type, param, norm, key);"
    /* what refers to a resource, whatever the parameter (_revinclude=*) */
    "CREATE INDEX idx_reference_t ON idx_reference(target_id, target_type);",
};
#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])

static ehr_status db_error(sqlite3 *db, ehr_err *err, const char *what)
{
    int code = sqlite3_errcode(db);
    ehr_status st = (code == SQLITE_BUSY || code == SQLITE_LOCKED) ? EHR_EBUSY : EHR_EIO;
    if (code == SQLITE_NOMEM)
        st = EHR_ENOMEM;
    return ehr_err_set(err, st, "%s: %s", what, sqlite3_errmsg(db));
}

static ehr_status configure(sqlite3 *db, ehr_err *err)
{
    sqlite3_busy_timeout(db, 10000);
    sqlite3_extended_result_codes(db, 1);
    if (sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                     "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-32768;",
                     NULL, NULL, NULL) != SQLITE_OK)
        return db_error(db, err, "configuring the database");
    return EHR_OK;
}

static ehr_status migrate(sqlite3 *db, const char *path, ehr_err *err)
{
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_error(db, err, "starting migrations");
    sqlite3_stmt *st = NULL;
    int version = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version > (int)N_MIGRATIONS) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return ehr_err_set(err, EHR_EUNSUPPORTED,
                           "%s has schema version %d, newer than this program knows (%zu); "
                           "upgrade ehr",
                           path, version, N_MIGRATIONS);
    }
    for (size_t i = (size_t)version; i < N_MIGRATIONS; i++) {
        if (sqlite3_exec(db, migrations[i], NULL, NULL, NULL) != SQLITE_OK) {
            ehr_status s = db_error(db, err, "applying a schema migration");
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return s;
        }
        ehr_log(EHR_LOG_INFO, "store: applied schema migration %zu", i + 1);
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %zu", N_MIGRATIONS);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        ehr_status s = db_error(db, err, "finishing migrations");
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return s;
    }
    return EHR_OK;
}

static ehr_status s_open(const char *target, ehr_store **out, ehr_err *err)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(target, &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        ehr_status st = ehr_err_set(err, EHR_EIO, "cannot open database %s: %s", target,
                                    db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return st;
    }
    ehr_status st = configure(db, err);
    if (!st)
        st = migrate(db, target, err);
    sqlite3_close(db);
    if (st)
        return st;
    struct sqlite_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(target))) {
        free(s);
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    }
    s->base.ops = &ehr_store_sqlite_ops;
    *out = &s->base;
    return EHR_OK;
}

static void s_close(ehr_store *base)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    free(s->path);
    free(s);
}

static ehr_status s_connect(ehr_store *base, ehr_store_conn **out, ehr_err *err)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    struct sqlite_conn *c = calloc(1, sizeof *c);
    if (!c)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    c->base.store = base;
    if (sqlite3_open_v2(s->path, &c->x.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        ehr_status st = ehr_err_set(err, EHR_EIO, "cannot open database %s: %s", s->path,
                                    c->x.db ? sqlite3_errmsg(c->x.db) : "out of memory");
        sqlite3_close(c->x.db);
        free(c);
        return st;
    }
    c->db = c->x.db;
    ehr_status st = configure(c->db, err);
    for (int i = 0; !st && i < ST_COUNT; i++)
        if (sqlite3_prepare_v3(c->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &c->stmts[i],
                               NULL) != SQLITE_OK)
            st = db_error(c->db, err, "preparing statements");
    if (st) {
        for (int i = 0; i < ST_COUNT; i++)
            sqlite3_finalize(c->stmts[i]);
        sqlite3_close(c->db);
        free(c);
        return st;
    }
    *out = &c->base;
    return EHR_OK;
}

static void s_disconnect(ehr_store_conn *base)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->stmts[i]);
    ehr_sqlite__xconn_close(&c->x);
    sqlite3_close(c->db);
    free(c);
}

/* Run a statement that returns no rows. */
static ehr_status run(struct sqlite_conn *c, sqlite3_stmt *st, ehr_err *err, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return db_error(c->db, err, what);
    return EHR_OK;
}

static ehr_status s_begin(ehr_store_conn *base, bool write, ehr_err *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    return run(c, c->stmts[write ? ST_BEGIN_WRITE : ST_BEGIN_READ], err, "starting a transaction");
}

static ehr_status s_commit(ehr_store_conn *base, ehr_err *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    return run(c, c->stmts[ST_COMMIT], err, "committing");
}

static void s_rollback(ehr_store_conn *base)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    if (!sqlite3_get_autocommit(c->db))
        run(c, c->stmts[ST_ROLLBACK], NULL, "rolling back");
}

static ehr_status s_savepoint(ehr_store_conn *base, ehr_err *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    return run(c, c->stmts[ST_SAVEPOINT], err, "starting a savepoint");
}

static ehr_status s_release(ehr_store_conn *base, ehr_err *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    return run(c, c->stmts[ST_RELEASE], err, "releasing a savepoint");
}

static ehr_status s_rollback_to(ehr_store_conn *base, ehr_err *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    ehr_status st = run(c, c->stmts[ST_ROLLBACK_TO], err, "rolling back to a savepoint");
    if (!st)
        st = run(c, c->stmts[ST_RELEASE], err, "releasing a savepoint");
    return st;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* Columns: version, last_updated, deleted, method, content (from column off). */
static ehr_status fill_rec(sqlite3_stmt *st, int off, ehr_store_rec *rec, ehr_buf *content)
{
    rec->version = sqlite3_column_int64(st, off);
    rec->last_updated = sqlite3_column_int64(st, off + 1);
    rec->deleted = sqlite3_column_int(st, off + 2) != 0;
    rec->method = NULL;
    rec->content = NULL;
    rec->content_len = 0;
    if (content) {
        const void *p = sqlite3_column_blob(st, off + 4);
        size_t n = (size_t)sqlite3_column_bytes(st, off + 4);
        ehr_buf_reset(content);
        if (p && ehr_buf_append(content, p, n))
            return EHR_ENOMEM;
        rec->content = content->data;
        rec->content_len = content->len;
    }
    return EHR_OK;
}

static ehr_status lookup(struct sqlite_conn *c, sqlite3_stmt *st, ehr_store_rec *rec,
                         ehr_buf *content, ehr_err *err)
{
    int rc = sqlite3_step(st);
    ehr_status res;
    if (rc == SQLITE_ROW)
        res = fill_rec(st, 0, rec, content);
    else if (rc == SQLITE_DONE)
        res = EHR_ENOTFOUND;
    else
        res = db_error(c->db, err, "reading a resource");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return res;
}

static ehr_status s_current(ehr_store_conn *base, const char *type, const char *id,
                            ehr_store_rec *rec, ehr_buf *content, ehr_err *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    sqlite3_stmt *st = c->stmts[ST_CURRENT];
    bind_text(st, 1, type);
    bind_text(st, 2, id);
    rec->type = type;
    rec->id = id;
    return lookup(c, st, rec, content, err);
}

static ehr_status s_version(ehr_store_conn *base, const char *type, const char *id, int64_t version,
                            ehr_store_rec *rec, ehr_buf *content, ehr_err *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    sqlite3_stmt *st = c->stmts[ST_VERSION];
    bind_text(st, 1, type);
    bind_text(st, 2, id);
    sqlite3_bind_int64(st, 3, version);
    rec->type = type;
    rec->id = id;
    return lookup(c, st, rec, content, err);
}

static ehr_status put_value(struct sqlite_conn *c, sqlite3_int64 key, const char *type,
                            const struct ehr_store_value *v, ehr_err *err)
{
    static const enum stmt_id ins[] = {
        [EHR_IDX_STRING] = ST_INS_STRING,     [EHR_IDX_TOKEN] = ST_INS_TOKEN,
        [EHR_IDX_DATE] = ST_INS_DATE,         [EHR_IDX_REFERENCE] = ST_INS_REFERENCE,
        [EHR_IDX_QUANTITY] = ST_INS_QUANTITY, [EHR_IDX_NUMBER] = ST_INS_NUMBER,
        [EHR_IDX_URI] = ST_INS_URI,           [EHR_IDX_TEXT] = ST_INS_TEXT,
    };
    sqlite3_stmt *st = c->stmts[ins[v->kind]];
    sqlite3_bind_int64(st, 1, key);
    bind_text(st, 2, type);
    bind_text(st, 3, v->param);
    sqlite3_bind_int(st, 9, v->grp);
    switch (v->kind) {
    case EHR_IDX_STRING:
        bind_text(st, 4, v->s1);
        bind_text(st, 5, v->s2);
        break;
    case EHR_IDX_TOKEN:
    case EHR_IDX_REFERENCE:
        bind_text(st, 4, v->s1);
        bind_text(st, 5, v->s2);
        bind_text(st, 6, v->s3);
        break;
    case EHR_IDX_DATE:
        sqlite3_bind_int64(st, 4, v->lo);
        sqlite3_bind_int64(st, 5, v->hi);
        break;
    case EHR_IDX_QUANTITY:
        sqlite3_bind_double(st, 4, v->num);
        bind_text(st, 5, v->s1);
        bind_text(st, 6, v->s2);
        break;
    case EHR_IDX_NUMBER:
        sqlite3_bind_double(st, 4, v->num);
        break;
    case EHR_IDX_URI:
    case EHR_IDX_TEXT:
        bind_text(st, 4, v->s1);
        break;
    }
    return run(c, st, err, "writing a search index row");
}

/* Replace (replace: delete first) the index rows and compartment of key. */
static ehr_status write_index(struct sqlite_conn *c, sqlite3_int64 key, const char *type,
                              const ehr_store_index *idx, bool replace, ehr_err *err)
{
    ehr_status res;
    if (replace) {
        for (int i = ST_DEL_STRING; i <= ST_DEL_COMPARTMENT; i++) {
            sqlite3_bind_int64(c->stmts[i], 1, key);
            if ((res = run(c, c->stmts[i], err, "replacing search index rows")))
                return res;
        }
    }
    if (!idx)
        return EHR_OK;
    for (size_t i = 0; i < idx->n_values; i++)
        if ((res = put_value(c, key, type, &idx->values[i], err)))
            return res;
    for (size_t i = 0; i < idx->n_patients; i++) {
        sqlite3_stmt *st = c->stmts[ST_INS_COMPARTMENT];
        bind_text(st, 1, idx->patients[i]);
        sqlite3_bind_int64(st, 2, key);
        if ((res = run(c, st, err, "writing the patient compartment")))
            return res;
    }
    return EHR_OK;
}

static ehr_status s_put(ehr_store_conn *base, const ehr_store_rec *rec, const ehr_store_index *idx,
                        ehr_err *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    sqlite3_stmt *st = c->stmts[ST_INSERT_RESOURCE];
    bind_text(st, 1, rec->type);
    bind_text(st, 2, rec->id);
    sqlite3_bind_int64(st, 3, rec->version);
    sqlite3_bind_int64(st, 4, rec->last_updated);
    sqlite3_bind_int(st, 5, rec->deleted);
    bind_text(st, 6, rec->method);
    if (rec->content)
        sqlite3_bind_blob(st, 7, rec->content, (int)rec->content_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 7);
    ehr_status res = run(c, st, err, "writing a resource");
    if (res)
        return res;
    sqlite3_int64 rid = sqlite3_last_insert_rowid(c->db);

    st = c->stmts[ST_UPSERT_CURRENT];
    bind_text(st, 1, rec->type);
    bind_text(st, 2, rec->id);
    sqlite3_bind_int64(st, 3, rid);
    sqlite3_bind_int64(st, 4, rec->version);
    sqlite3_bind_int64(st, 5, rec->last_updated);
    sqlite3_bind_int(st, 6, rec->deleted);
    int rc = sqlite3_step(st);
    sqlite3_int64 key = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc == SQLITE_ROW)
        rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE)
        return db_error(c->db, err, "updating the current version");
    if ((res = ehr_sqlite__version_compartment(&c->x, rid, rec, idx, err)))
        return res;

    return write_index(c, key, rec->type, idx, rec->version > 1, err);
}

static ehr_status s_reindex(ehr_store_conn *base, const char *type, const char *id,
                            const ehr_store_index *idx, ehr_err *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT key, rid, version, deleted FROM current WHERE type = ?1 "
                           "AND id = ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return db_error(c->db, err, "reindexing");
    bind_text(st, 1, type);
    bind_text(st, 2, id);
    int rc = sqlite3_step(st);
    sqlite3_int64 key = 0, rid = 0;
    bool deleted = false;
    int64_t version = 0;
    if (rc == SQLITE_ROW) {
        key = sqlite3_column_int64(st, 0);
        rid = sqlite3_column_int64(st, 1);
        version = sqlite3_column_int64(st, 2);
        deleted = sqlite3_column_int(st, 3) != 0;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return ehr_err_set(err, EHR_ENOTFOUND, "%s/%s does not exist", type, id);
    if (rc != SQLITE_ROW)
        return db_error(c->db, err, "reindexing");
    ehr_store_rec rec = {.type = type, .id = id, .version = version};
    ehr_status res;
    if (!deleted && idx && (res = ehr_sqlite__version_compartment(&c->x, rid, &rec, idx, err)))
        return res;
    return write_index(c, key, type, deleted ? NULL : idx, true, err);
}

/* Call cb for each row of st: type, id, version, last_updated, deleted, method, content. */
static ehr_status each_row(struct sqlite_conn *c, sqlite3_stmt *st, ehr_store_row_cb cb, void *ctx,
                           ehr_err *err)
{
    ehr_status res = EHR_OK;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ehr_store_rec rec = {
            .type = (const char *)sqlite3_column_text(st, 0),
            .id = (const char *)sqlite3_column_text(st, 1),
            .version = sqlite3_column_int64(st, 2),
            .last_updated = sqlite3_column_int64(st, 3),
            .deleted = sqlite3_column_int(st, 4) != 0,
            .method = (const char *)sqlite3_column_text(st, 5),
            .content = sqlite3_column_blob(st, 6),
            .content_len = (size_t)sqlite3_column_bytes(st, 6),
        };
        if ((res = cb(ctx, &rec)))
            break;
    }
    if (!res && rc != SQLITE_DONE)
        res = db_error(c->db, err, "reading rows");
    return res;
}

/* A statement built at run time, with its bindings collected as we go. */
struct dyn {
    ehr_buf sql;
    ehr_buf owned[8]; /* JSON arrays bound as text (access limits) */
    int n_owned;
    int n;
    struct {
        int is_int, is_real;
        const char *s;
        int64_t i;
        double d;
    } binds[256];
};

static int dyn_text(struct dyn *d, const char *s)
{
    if (d->n >= 256)
        return 0;
    d->binds[d->n].is_int = 0;
    d->binds[d->n].is_real = 0;
    d->binds[d->n].s = s;
    return ++d->n;
}

static int dyn_int(struct dyn *d, int64_t v)
{
    if (d->n >= 256)
        return 0;
    d->binds[d->n].is_int = 1;
    d->binds[d->n].is_real = 0;
    d->binds[d->n].i = v;
    return ++d->n;
}

static void dyn_free(struct dyn *d)
{
    ehr_buf_free(&d->sql);
    for (int i = 0; i < d->n_owned; i++)
        ehr_buf_free(&d->owned[i]);
}

/* Bind a JSON array of strings, for json_each(). */
static int dyn_array(struct dyn *d, const char *const *v, size_t n)
{
    if (d->n_owned == 8)
        return dyn_text(d, "[]");
    ehr_buf *b = &d->owned[d->n_owned++];
    *b = (ehr_buf)EHR_BUF_INIT;
    if (ehr_sqlite__json_array(b, v, n))
        return dyn_text(d, "[]");
    return dyn_text(d, b->data);
}

/*
 * The access limits of a query (store.h, ehr_store_access) as SQL over
 * columns type_col and, for the compartment, either the current key or
 * the version's rid.
 */
static void access_sql(struct dyn *d, ehr_buf *w, const ehr_store_access *a, const char *type_col,
                       bool versions, const char *id_col)
{
    if (!a)
        return;
    if (a->n_groups == 0 || a->n_groups > 3) {
        ehr_buf_puts(w, " AND 0");
        return;
    }
    ehr_buf_puts(w, " AND (");
    for (size_t i = 0; i < a->n_groups; i++) {
        const struct ehr_store_access_group *g = &a->groups[i];
        ehr_buf_puts(w, i ? " OR (1" : "(1");
        if (g->n_types)
            ehr_buf_printf(w, " AND %s IN (SELECT value FROM json_each(?%d))", type_col,
                           dyn_array(d, g->types, g->n_types));
        if (g->limited && versions)
            ehr_buf_printf(w,
                           " AND %s IN (SELECT rid FROM version_compartment WHERE patient IN "
                           "(SELECT value FROM json_each(?%d)))",
                           id_col, dyn_array(d, g->patients, g->n_patients));
        else if (g->limited)
            ehr_buf_printf(w,
                           " AND %s IN (SELECT key FROM compartment WHERE patient IN "
                           "(SELECT value FROM json_each(?%d)))",
                           id_col, dyn_array(d, g->patients, g->n_patients));
        ehr_buf_putc(w, ')');
    }
    ehr_buf_putc(w, ')');
}

static ehr_status dyn_prepare(struct sqlite_conn *c, struct dyn *d, sqlite3_stmt **out,
                              ehr_err *err)
{
    if (d->n >= 256)
        return ehr_err_set(err, EHR_ELIMIT, "the query has too many values (at most 255)");
    if (sqlite3_prepare_v2(c->db, d->sql.data, (int)d->sql.len, out, NULL) != SQLITE_OK)
        return db_error(c->db, err, "preparing a query");
    for (int i = 0; i < d->n; i++) {
        if (d->binds[i].is_int)
            sqlite3_bind_int64(*out, i + 1, d->binds[i].i);
        else if (d->binds[i].is_real)
            sqlite3_bind_double(*out, i + 1, d->binds[i].d);
        else
            bind_text(*out, i + 1, d->binds[i].s);
    }
    return EHR_OK;
}

static ehr_status count_rows(struct sqlite_conn *c, struct dyn *d, size_t *total, ehr_err *err)
{
    sqlite3_stmt *st = NULL;
    ehr_status res = dyn_prepare(c, d, &st, err);
    if (!res) {
        if (sqlite3_step(st) == SQLITE_ROW)
            *total = (size_t)sqlite3_column_int64(st, 0);
        else
            res = db_error(c->db, err, "counting rows");
    }
    sqlite3_finalize(st);
    return res;
}

static ehr_status s_history(ehr_store_conn *base, const ehr_store_history_q *q, ehr_store_row_cb cb,
                            void *ctx, size_t *total, ehr_err *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    struct dyn d = {.sql = EHR_BUF_INIT};
    ehr_buf where = EHR_BUF_INIT;
    ehr_buf_puts(&where, " WHERE 1");
    if (q->type)
        ehr_buf_printf(&where, " AND type = ?%d", dyn_text(&d, q->type));
    if (q->id)
        ehr_buf_printf(&where, " AND id = ?%d", dyn_text(&d, q->id));
    if (q->since)
        ehr_buf_printf(&where, " AND last_updated >= ?%d", dyn_int(&d, q->since));
    if (q->at_or_before)
        ehr_buf_printf(&where, " AND last_updated <= ?%d", dyn_int(&d, q->at_or_before));
    access_sql(&d, &where, q->access, "type", true, "rid");
    ehr_status res = EHR_OK;
    if (total) {
        ehr_buf_printf(&d.sql, "SELECT count(*) FROM resource%s", where.data);
        res = count_rows(c, &d, total, err);
    }
    if (!res && q->count > 0 && cb) {
        ehr_buf_reset(&d.sql);
        ehr_buf_printf(&d.sql,
                       "SELECT type, id, version, last_updated, deleted, method, content "
                       "FROM resource%s ORDER BY rid DESC LIMIT %zu OFFSET %zu",
                       where.data, q->count, q->offset);
        sqlite3_stmt *st = NULL;
        if (!(res = dyn_prepare(c, &d, &st, err)))
            res = each_row(c, st, cb, ctx, err);
        sqlite3_finalize(st);
    }
    ehr_buf_free(&where);
    dyn_free(&d);
    return res;
}

/* SHA-256 over prev_hash, seq, time and the event, as lowercase hex. */
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

#define GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

static ehr_status s_audit_append(ehr_store_conn *base, int64_t time, const char *event, size_t len,
                                 ehr_err *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    sqlite3_stmt *st = c->stmts[ST_AUDIT_LAST];
    char prev[65] = GENESIS;
    int64_t seq = 1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        seq = sqlite3_column_int64(st, 0) + 1;
        snprintf(prev, sizeof prev, "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_error(c->db, err, "reading the audit log");
    char hash[65];
    audit_hash(prev, seq, time, event, len, hash);
    st = c->stmts[ST_AUDIT_INSERT];
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int64(st, 2, time);
    bind_text(st, 3, prev);
    bind_text(st, 4, hash);
    sqlite3_bind_text(st, 5, event, (int)len, SQLITE_STATIC);
    return run(c, st, err, "appending to the audit log");
}

static ehr_status s_audit_verify(ehr_store_conn *base, int64_t *n_records, int64_t *bad_seq,
                                 ehr_err *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    sqlite3_stmt *st = NULL;
    *n_records = 0;
    *bad_seq = 0;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT seq, time, prev_hash, hash, event FROM audit ORDER BY seq", -1,
                           &st, NULL) != SQLITE_OK)
        return db_error(c->db, err, "reading the audit log");
    char prev[65] = GENESIS;
    int64_t expect = 1;
    int rc;
    ehr_status res = EHR_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        const char *p = (const char *)sqlite3_column_text(st, 2);
        const char *h = (const char *)sqlite3_column_text(st, 3);
        const char *ev = (const char *)sqlite3_column_text(st, 4);
        char want[65];
        audit_hash(prev, seq, sqlite3_column_int64(st, 1), ev ? ev : "",
                   (size_t)sqlite3_column_bytes(st, 4), want);
        if (seq != expect) {
            /* a gap: the first missing record is the bad one */
            *bad_seq = expect;
            res = ehr_err_set(err, EHR_EINVAL,
                              "audit record %lld is missing (the next record is %lld)",
                              (long long)expect, (long long)seq);
            break;
        }
        if (!p || strcmp(p, prev) || !h || strcmp(h, want)) {
            *bad_seq = seq;
            res = ehr_err_set(err, EHR_EINVAL, "audit record %lld does not match the chain (%s)",
                              (long long)seq,
                              !p || strcmp(p, prev) ? "its link to the record before is wrong"
                                                    : "its content or hash was changed");
            break;
        }
        snprintf(prev, sizeof prev, "%s", h);
        expect++;
        (*n_records)++;
    }
    if (!res && rc != SQLITE_DONE)
        res = db_error(c->db, err, "reading the audit log");
    sqlite3_finalize(st);
    return res;
}

/* Current resources in key order (bulk export, see store.h scan). */
static ehr_status s_scan(ehr_store_conn *base, const ehr_store_scan_q *q, ehr_store_row_cb cb,
                         void *ctx, int64_t *last_key, ehr_err *err)
{
    struct sqlite_conn *c = (struct sqlite_conn *)base;
    struct dyn d = {.sql = EHR_BUF_INIT};
    ehr_buf_printf(&d.sql,
                   "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.method, "
                   "r.content, c.key FROM current c JOIN resource r ON r.rid = c.rid "
                   "WHERE c.deleted = 0 AND c.key > ?%d",
                   dyn_int(&d, q->after_key));
    if (q->n_types)
        ehr_buf_printf(&d.sql, " AND c.type IN (SELECT value FROM json_each(?%d))",
                       dyn_array(&d, q->types, q->n_types));
    if (q->since)
        ehr_buf_printf(&d.sql, " AND c.last_updated >= ?%d", dyn_int(&d, q->since));
    if (q->in_compartments && q->n_patients)
        ehr_buf_printf(&d.sql,
                       " AND c.key IN (SELECT key FROM compartment WHERE patient IN "
                       "(SELECT value FROM json_each(?%d)))",
                       dyn_array(&d, q->patients, q->n_patients));
    else if (q->in_compartments)
        ehr_buf_puts(&d.sql, " AND c.key IN (SELECT key FROM compartment)");
    access_sql(&d, &d.sql, q->access, "c.type", false, "c.key");
    ehr_buf_puts(&d.sql, " ORDER BY c.key");
    if (q->limit)
        ehr_buf_printf(&d.sql, " LIMIT %zu", q->limit);
    sqlite3_stmt *st = NULL;
    ehr_status res = d.sql.data ? dyn_prepare(c, &d, &st, err) : EHR_ENOMEM;
    int rc = SQLITE_DONE;
    while (!res && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        ehr_store_rec rec = {
            .type = (const char *)sqlite3_column_text(st, 0),
            .id = (const char *)sqlite3_column_text(st, 1),
            .version = sqlite3_column_int64(st, 2),
            .last_updated = sqlite3_column_int64(st, 3),
            .deleted = false,
            .method = (const char *)sqlite3_column_text(st, 5),
            .content = sqlite3_column_blob(st, 6),
            .content_len = (size_t)sqlite3_column_bytes(st, 6),
        };
        if (last_key)
            *last_key = sqlite3_column_int64(st, 7);
        res = cb(ctx, &rec);
    }
    if (!res && rc != SQLITE_DONE)
        res = db_error(c->db, err, "scanning resources");
    sqlite3_finalize(st);
    dyn_free(&d);
    return res;
}

const struct ehr_store_ops ehr_store_sqlite_ops = {
    .name = "sqlite",
    .open = s_open,
    .close = s_close,
    .connect = s_connect,
    .disconnect = s_disconnect,
    .begin = s_begin,
    .commit = s_commit,
    .rollback = s_rollback,
    .savepoint = s_savepoint,
    .release = s_release,
    .rollback_to = s_rollback_to,
    .current = s_current,
    .version = s_version,
    .put = s_put,
    .history = s_history,
    .search = ehr_sqlite__search,
    .reindex = s_reindex,
    .audit_append = s_audit_append,
    .audit_verify = s_audit_verify,
    .compartment_of = ehr_sqlite__compartment_of,
    .audit_list = ehr_sqlite__audit_list,
    .obj_get = ehr_sqlite__obj_get,
    .obj_put = ehr_sqlite__obj_put,
    .obj_del = ehr_sqlite__obj_del,
    .obj_list = ehr_sqlite__obj_list,
    .obj_purge = ehr_sqlite__obj_purge,
    .set_sync = ehr_sqlite__set_sync,
    .flush = ehr_sqlite__flush,
    .scan = s_scan,
    .hl7_put = ehr_sqlite__hl7_put,
    .hl7_update = ehr_sqlite__hl7_update,
    .hl7_list = ehr_sqlite__hl7_list,
    .audit_applied_get = ehr_sqlite__audit_applied_get,
    .audit_applied_set = ehr_sqlite__audit_applied_set,
};

/*
 * sqlite_access.c - the parts of the SQLite backend that access control
 * and the auth module need: the compartment of every version (so that a
 * patient-limited caller sees an old version only if it was in an allowed
 * compartment then), small JSON documents for users, sessions, clients and
 * tokens (table auth_object), and reading the audit log back.
 *
 * Statements are prepared on first use and kept per connection.
 */
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "store/sqlite_int.h"

static const char *const xsql[SX_COUNT] = {
    [SX_VC_INSERT] = "INSERT OR IGNORE INTO version_compartment(rid, patient) VALUES (?1, ?2)",
    [SX_VC_COPY] = "INSERT OR IGNORE INTO version_compartment(rid, patient) "
                   "SELECT ?1, patient FROM version_compartment WHERE rid = "
                   "(SELECT rid FROM resource WHERE type = ?2 AND id = ?3 AND version = ?4)",
    [SX_COMP_CURRENT] = "SELECT v.patient FROM current c JOIN version_compartment v "
                        "ON v.rid = c.rid WHERE c.type = ?1 AND c.id = ?2",
    [SX_COMP_VERSION] = "SELECT v.patient FROM resource r JOIN version_compartment v "
                        "ON v.rid = r.rid WHERE r.type = ?1 AND r.id = ?2 AND r.version = ?3",
    [SX_VERSION_EXISTS] = "SELECT 1 FROM resource WHERE type = ?1 AND id = ?2 AND "
                          "(?3 = 0 OR version = ?3) LIMIT 1",
    [SX_OBJ_GET] = "SELECT doc FROM auth_object WHERE kind = ?1 AND key = ?2 AND "
                   "(expires = 0 OR expires > ?3)",
    [SX_OBJ_INSERT] = "INSERT INTO auth_object(kind, key, owner, expires, doc) "
                      "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(kind, key) DO UPDATE SET "
                      "owner = excluded.owner, expires = excluded.expires, doc = excluded.doc "
                      "WHERE auth_object.expires <> 0 AND auth_object.expires <= ?6",
    [SX_OBJ_REPLACE] = "INSERT OR REPLACE INTO auth_object(kind, key, owner, expires, doc) "
                       "VALUES (?1, ?2, ?3, ?4, ?5)",
    [SX_OBJ_DEL] = "DELETE FROM auth_object WHERE kind = ?1 AND key = ?2",
    [SX_OBJ_LIST] = "SELECT key, owner, expires, doc FROM auth_object WHERE kind = ?1 AND "
                    "(expires = 0 OR expires > ?2) ORDER BY key",
    [SX_OBJ_LIST_OWNER] = "SELECT key, owner, expires, doc FROM auth_object WHERE kind = ?1 AND "
                          "owner = ?3 AND (expires = 0 OR expires > ?2) ORDER BY key",
    [SX_OBJ_PURGE] = "DELETE FROM auth_object WHERE expires <> 0 AND expires <= ?1",
    [SX_AJ_GET] = "SELECT generation, applied FROM audit_journal WHERE id = 1",
    [SX_AJ_SET] =
        "INSERT OR REPLACE INTO audit_journal(id, generation, applied) VALUES (1, ?1, ?2)",
};

static ehr_status xerr(struct sqlite_xconn *x, ehr_err *err, const char *what)
{
    int code = sqlite3_errcode(x->db);
    ehr_status st = (code == SQLITE_BUSY || code == SQLITE_LOCKED) ? EHR_EBUSY : EHR_EIO;
    if (code == SQLITE_NOMEM)
        st = EHR_ENOMEM;
    return ehr_err_set(err, st, "%s: %s", what, sqlite3_errmsg(x->db));
}

static sqlite3_stmt *stmt(struct sqlite_xconn *x, enum sqlite_xstmt id, ehr_err *err)
{
    if (!x->stmts[id] && sqlite3_prepare_v3(x->db, xsql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                            &x->stmts[id], NULL) != SQLITE_OK) {
        xerr(x, err, "preparing a statement");
        return NULL;
    }
    return x->stmts[id];
}

static void done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static void text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

void ehr_sqlite__xconn_close(struct sqlite_xconn *x)
{
    for (int i = 0; i < SX_COUNT; i++) {
        sqlite3_finalize(x->stmts[i]);
        x->stmts[i] = NULL;
    }
    ehr_sqlite__search_cache_free(x);
}

ehr_status ehr_sqlite__version_compartment(struct sqlite_xconn *x, sqlite3_int64 rid,
                                           const ehr_store_rec *rec, const ehr_store_index *idx,
                                           ehr_err *err)
{
    sqlite3_stmt *st;
    if (!idx) {
        /* a deletion keeps the compartment of the version it deletes */
        if (rec->version <= 1 || !(st = stmt(x, SX_VC_COPY, err)))
            return rec->version <= 1 ? EHR_OK : EHR_EIO;
        sqlite3_bind_int64(st, 1, rid);
        text(st, 2, rec->type);
        text(st, 3, rec->id);
        sqlite3_bind_int64(st, 4, rec->version - 1);
        int rc = sqlite3_step(st);
        done(st);
        return rc == SQLITE_DONE ? EHR_OK : xerr(x, err, "recording the compartment");
    }
    if (idx->n_patients && !(st = stmt(x, SX_VC_INSERT, err)))
        return EHR_EIO;
    for (size_t i = 0; i < idx->n_patients; i++) {
        sqlite3_bind_int64(st, 1, rid);
        text(st, 2, idx->patients[i]);
        int rc = sqlite3_step(st);
        done(st);
        if (rc != SQLITE_DONE)
            return xerr(x, err, "recording the compartment");
    }
    return EHR_OK;
}

ehr_status ehr_sqlite__json_array(ehr_buf *b, const char *const *v, size_t n)
{
    ehr_status st = ehr_buf_putc(b, '[');
    for (size_t i = 0; !st && i < n; i++) {
        if (i)
            st = ehr_buf_putc(b, ',');
        if (!st)
            st = ehr_buf_putc(b, '"');
        if (!st)
            st = ehr_buf_json_escape(b, v[i], strlen(v[i]));
        if (!st)
            st = ehr_buf_putc(b, '"');
    }
    if (!st)
        st = ehr_buf_putc(b, ']');
    return st;
}

ehr_status ehr_sqlite__compartment_of(ehr_store_conn *c, const char *type, const char *id,
                                      int64_t version, ehr_store_patient_cb cb, void *ctx,
                                      ehr_err *err)
{
    struct sqlite_xconn *x = ehr_sqlite__xconn(c);
    sqlite3_stmt *st = stmt(x, version ? SX_COMP_VERSION : SX_COMP_CURRENT, err);
    if (!st)
        return EHR_EIO;
    text(st, 1, type);
    text(st, 2, id);
    if (version)
        sqlite3_bind_int64(st, 3, version);
    int rc;
    ehr_status res = EHR_OK;
    size_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        n++;
        if ((res = cb(ctx, (const char *)sqlite3_column_text(st, 0))))
            break;
    }
    if (!res && rc != SQLITE_DONE)
        res = xerr(x, err, "reading a compartment");
    done(st);
    if (res || n)
        return res;
    /* no patient: tell "in no compartment" from "no such version" */
    if (!(st = stmt(x, SX_VERSION_EXISTS, err)))
        return EHR_EIO;
    text(st, 1, type);
    text(st, 2, id);
    sqlite3_bind_int64(st, 3, version);
    rc = sqlite3_step(st);
    done(st);
    if (rc == SQLITE_ROW)
        return EHR_OK;
    if (rc == SQLITE_DONE)
        return ehr_err_set(err, EHR_ENOTFOUND, "%s/%s is not known", type, id);
    return xerr(x, err, "reading a resource");
}

ehr_status ehr_sqlite__audit_list(ehr_store_conn *c, const ehr_store_audit_q *q,
                                  ehr_store_audit_cb cb, void *ctx, ehr_err *err)
{
    struct sqlite_xconn *x = ehr_sqlite__xconn(c);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT seq, time, hash, event FROM audit WHERE seq >= ?1 AND time >= ?2 AND "
             "(?3 = 0 OR time <= ?3) AND (?4 IS NULL OR instr(event, ?4) > 0) "
             "ORDER BY seq %s LIMIT ?5",
             q->newest_first ? "DESC" : "ASC");
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(x->db, sql, -1, &st, NULL) != SQLITE_OK)
        return xerr(x, err, "reading the audit log");
    sqlite3_bind_int64(st, 1, q->from_seq);
    sqlite3_bind_int64(st, 2, q->since);
    sqlite3_bind_int64(st, 3, q->until);
    text(st, 4, q->text);
    sqlite3_bind_int64(st, 5, q->limit ? (sqlite3_int64)q->limit : -1);
    int rc;
    ehr_status res = EHR_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((res =
                 cb(ctx, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                    (const char *)sqlite3_column_text(st, 2),
                    (const char *)sqlite3_column_text(st, 3), (size_t)sqlite3_column_bytes(st, 3))))
            break;
    }
    if (!res && rc != SQLITE_DONE)
        res = xerr(x, err, "reading the audit log");
    sqlite3_finalize(st);
    return res;
}

ehr_status ehr_sqlite__obj_get(ehr_store_conn *c, const char *kind, const char *key, ehr_buf *doc,
                               ehr_err *err)
{
    struct sqlite_xconn *x = ehr_sqlite__xconn(c);
    sqlite3_stmt *st = stmt(x, SX_OBJ_GET, err);
    if (!st)
        return EHR_EIO;
    text(st, 1, kind);
    text(st, 2, key);
    sqlite3_bind_int64(st, 3, ehr_time_now_us());
    int rc = sqlite3_step(st);
    ehr_status res = EHR_OK;
    if (rc == SQLITE_ROW) {
        ehr_buf_reset(doc);
        const void *p = sqlite3_column_text(st, 0);
        if (ehr_buf_append(doc, p ? p : "", (size_t)sqlite3_column_bytes(st, 0)))
            res = ehr_err_set(err, EHR_ENOMEM, "out of memory");
    } else if (rc == SQLITE_DONE) {
        res = EHR_ENOTFOUND;
    } else {
        res = xerr(x, err, "reading auth data");
    }
    done(st);
    return res;
}

ehr_status ehr_sqlite__obj_put(ehr_store_conn *c, const ehr_store_obj *obj, bool create_only,
                               ehr_err *err)
{
    struct sqlite_xconn *x = ehr_sqlite__xconn(c);
    sqlite3_stmt *st = stmt(x, create_only ? SX_OBJ_INSERT : SX_OBJ_REPLACE, err);
    if (!st)
        return EHR_EIO;
    text(st, 1, obj->kind);
    text(st, 2, obj->key);
    text(st, 3, obj->owner);
    sqlite3_bind_int64(st, 4, obj->expires);
    sqlite3_bind_text(st, 5, obj->doc, (int)obj->doc_len, SQLITE_STATIC);
    if (create_only)
        sqlite3_bind_int64(st, 6, ehr_time_now_us());
    int rc = sqlite3_step(st);
    int changes = sqlite3_changes(x->db);
    done(st);
    if (rc != SQLITE_DONE)
        return xerr(x, err, "writing auth data");
    /* create_only: an existing, unexpired row makes the upsert change nothing */
    if (create_only && changes == 0)
        return ehr_err_set(err, EHR_EEXISTS, "already exists");
    return EHR_OK;
}

ehr_status ehr_sqlite__obj_del(ehr_store_conn *c, const char *kind, const char *key, ehr_err *err)
{
    struct sqlite_xconn *x = ehr_sqlite__xconn(c);
    sqlite3_stmt *st = stmt(x, SX_OBJ_DEL, err);
    if (!st)
        return EHR_EIO;
    text(st, 1, kind);
    text(st, 2, key);
    int rc = sqlite3_step(st);
    done(st);
    return rc == SQLITE_DONE ? EHR_OK : xerr(x, err, "deleting auth data");
}

ehr_status ehr_sqlite__obj_list(ehr_store_conn *c, const char *kind, const char *owner,
                                ehr_store_obj_cb cb, void *ctx, ehr_err *err)
{
    struct sqlite_xconn *x = ehr_sqlite__xconn(c);
    sqlite3_stmt *st = stmt(x, owner ? SX_OBJ_LIST_OWNER : SX_OBJ_LIST, err);
    if (!st)
        return EHR_EIO;
    text(st, 1, kind);
    sqlite3_bind_int64(st, 2, ehr_time_now_us());
    if (owner)
        text(st, 3, owner);
    int rc;
    ehr_status res = EHR_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ehr_store_obj o = {
            .kind = kind,
            .key = (const char *)sqlite3_column_text(st, 0),
            .owner = (const char *)sqlite3_column_text(st, 1),
            .expires = sqlite3_column_int64(st, 2),
            .doc = (const char *)sqlite3_column_text(st, 3),
            .doc_len = (size_t)sqlite3_column_bytes(st, 3),
        };
        if ((res = cb(ctx, &o)))
            break;
    }
    if (!res && rc != SQLITE_DONE)
        res = xerr(x, err, "listing auth data");
    done(st);
    return res;
}

ehr_status ehr_sqlite__obj_purge(ehr_store_conn *c, ehr_err *err)
{
    struct sqlite_xconn *x = ehr_sqlite__xconn(c);
    sqlite3_stmt *st = stmt(x, SX_OBJ_PURGE, err);
    if (!st)
        return EHR_EIO;
    sqlite3_bind_int64(st, 1, ehr_time_now_us());
    int rc = sqlite3_step(st);
    done(st);
    return rc == SQLITE_DONE ? EHR_OK : xerr(x, err, "purging auth data");
}

ehr_status ehr_sqlite__set_sync(ehr_store_conn *c, bool full, ehr_err *err)
{
    struct sqlite_xconn *x = ehr_sqlite__xconn(c);
    if (sqlite3_exec(x->db, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", NULL,
                     NULL, NULL) != SQLITE_OK)
        return xerr(x, err, "setting durability");
    return EHR_OK;
}

ehr_status ehr_sqlite__flush(ehr_store_conn *c, ehr_err *err)
{
    struct sqlite_xconn *x = ehr_sqlite__xconn(c);
    /* a passive checkpoint syncs the WAL before copying it back; readers
       and writers are not blocked */
    int rc = sqlite3_wal_checkpoint_v2(x->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        return xerr(x, err, "flushing the log");
    return EHR_OK;
}

ehr_status ehr_sqlite__audit_applied_get(ehr_store_conn *c, int64_t *generation, int64_t *offset,
                                         ehr_err *err)
{
    struct sqlite_xconn *x = ehr_sqlite__xconn(c);
    sqlite3_stmt *st = stmt(x, SX_AJ_GET, err);
    if (!st)
        return EHR_EIO;
    *generation = *offset = 0;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *generation = sqlite3_column_int64(st, 0);
        *offset = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return xerr(x, err, "reading the audit journal mark");
    return EHR_OK;
}

ehr_status ehr_sqlite__audit_applied_set(ehr_store_conn *c, int64_t generation, int64_t offset,
                                         ehr_err *err)
{
    struct sqlite_xconn *x = ehr_sqlite__xconn(c);
    sqlite3_stmt *st = stmt(x, SX_AJ_SET, err);
    if (!st)
        return EHR_EIO;
    sqlite3_bind_int64(st, 1, generation);
    sqlite3_bind_int64(st, 2, offset);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return xerr(x, err, "setting the audit journal mark");
    return EHR_OK;
}

/*
 * sqlite_hl7.c - HL7 v2 messages in the SQLite backend (table
 * hl7_message, migration 4; store.h, "HL7 v2 messages").
 *
 * Outside a transaction each statement commits on its own, durably
 * (synchronous=FULL): a message is on disk when hl7_put returns.
 */
#include <stdio.h>
#include <string.h>

#include "store/sqlite_int.h"

static ehr_status herr(sqlite3 *db, ehr_err *err, const char *what)
{
    int code = sqlite3_errcode(db);
    ehr_status st = (code == SQLITE_BUSY || code == SQLITE_LOCKED) ? EHR_EBUSY : EHR_EIO;
    if (code == SQLITE_NOMEM)
        st = EHR_ENOMEM;
    return ehr_err_set(err, st, "%s: %s", what, sqlite3_errmsg(db));
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static ehr_status find_id(sqlite3 *db, const ehr_store_hl7 *m, int64_t *id, ehr_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT id FROM hl7_message WHERE dedup = "
                           "?1 || char(31) || ?2 || char(31) || ?3",
                           -1, &st, NULL) != SQLITE_OK)
        return herr(db, err, "preparing an HL7 message lookup");
    bind_text(st, 1, m->direction);
    bind_text(st, 2, m->peer ? m->peer : "");
    bind_text(st, 3, m->control_id ? m->control_id : "");
    ehr_status res = EHR_ENOTFOUND;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        res = EHR_OK;
    } else if (rc != SQLITE_DONE) {
        res = herr(db, err, "looking up an HL7 message");
    }
    sqlite3_finalize(st);
    return res;
}

ehr_status ehr_sqlite__hl7_put(ehr_store_conn *c, const ehr_store_hl7 *m, int64_t *id, ehr_err *err)
{
    sqlite3 *db = ehr_sqlite__xconn(c)->db;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(
            db,
            "INSERT INTO hl7_message(direction, peer, control_id, type, status, "
            "ack_code, outcome, received, processed, attempts, next_try, raw, ack, dedup) "
            "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,"
            "CASE WHEN ?5 = 'rejected' THEN NULL ELSE "
            "?1 || char(31) || ?2 || char(31) || ?3 END) "
            "ON CONFLICT(dedup) DO NOTHING",
            -1, &st, NULL) != SQLITE_OK)
        return herr(db, err, "preparing to store an HL7 message");
    bind_text(st, 1, m->direction);
    bind_text(st, 2, m->peer ? m->peer : "");
    bind_text(st, 3, m->control_id ? m->control_id : "");
    bind_text(st, 4, m->type ? m->type : "");
    bind_text(st, 5, m->status);
    bind_text(st, 6, m->ack_code);
    bind_text(st, 7, m->outcome);
    sqlite3_bind_int64(st, 8, m->received);
    sqlite3_bind_int64(st, 9, m->processed);
    sqlite3_bind_int64(st, 10, m->attempts);
    sqlite3_bind_int64(st, 11, m->next_try);
    sqlite3_bind_blob(st, 12, m->raw ? m->raw : "", (int)m->raw_len, SQLITE_STATIC);
    if (m->ack)
        sqlite3_bind_blob(st, 13, m->ack, (int)m->ack_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 13);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return herr(db, err, "storing an HL7 message");
    if (sqlite3_changes(db) == 0) {
        ehr_status fs = find_id(db, m, id, err);
        if (fs)
            return fs == EHR_ENOTFOUND ? ehr_err_set(err, EHR_EIO, "HL7 message conflict") : fs;
        return ehr_err_set(err, EHR_EEXISTS,
                           "message control id already received from this sender");
    }
    *id = sqlite3_last_insert_rowid(db);
    return EHR_OK;
}

ehr_status ehr_sqlite__hl7_update(ehr_store_conn *c, const ehr_store_hl7 *m, ehr_err *err)
{
    sqlite3 *db = ehr_sqlite__xconn(c)->db;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "UPDATE hl7_message SET status = ?2, ack_code = ?3, outcome = ?4, "
                           "ack = ?5, processed = ?6, attempts = ?7, next_try = ?8 WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return herr(db, err, "preparing to update an HL7 message");
    sqlite3_bind_int64(st, 1, m->id);
    bind_text(st, 2, m->status);
    bind_text(st, 3, m->ack_code);
    bind_text(st, 4, m->outcome);
    if (m->ack)
        sqlite3_bind_blob(st, 5, m->ack, (int)m->ack_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_int64(st, 6, m->processed);
    sqlite3_bind_int64(st, 7, m->attempts);
    sqlite3_bind_int64(st, 8, m->next_try);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return herr(db, err, "updating an HL7 message");
    if (sqlite3_changes(db) == 0)
        return ehr_err_set(err, EHR_ENOTFOUND, "no HL7 message %lld", (long long)m->id);
    return EHR_OK;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NULL
                                                     : (const char *)sqlite3_column_text(st, i);
}

ehr_status ehr_sqlite__hl7_list(ehr_store_conn *c, const ehr_store_hl7_q *q, ehr_store_hl7_cb cb,
                                void *ctx, ehr_err *err)
{
    sqlite3 *db = ehr_sqlite__xconn(c)->db;
    char sql[900];
    snprintf(sql, sizeof sql,
             "SELECT id, direction, peer, control_id, type, status, ack_code, outcome, "
             "received, processed, attempts, next_try, %s FROM hl7_message WHERE "
             "(?1 = 0 OR id = ?1) AND (?2 IS NULL OR direction = ?2) AND "
             "(?3 IS NULL OR peer = ?3) AND (?4 IS NULL OR control_id = ?4) AND "
             "(?5 IS NULL OR status = ?5) AND (?6 = 0 OR next_try <= ?6) "
             "ORDER BY id %s LIMIT ?7",
             q->with_raw ? "raw, ack" : "NULL, NULL", q->oldest_first ? "ASC" : "DESC");
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return herr(db, err, "preparing to list HL7 messages");
    sqlite3_bind_int64(st, 1, q->id);
    bind_text(st, 2, q->direction);
    bind_text(st, 3, q->peer);
    bind_text(st, 4, q->control_id);
    bind_text(st, 5, q->status);
    sqlite3_bind_int64(st, 6, q->due_before);
    sqlite3_bind_int64(st, 7, q->limit ? (sqlite3_int64)q->limit : -1);
    ehr_status res = EHR_OK;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ehr_store_hl7 m = {
            .id = sqlite3_column_int64(st, 0),
            .direction = col_text(st, 1),
            .peer = col_text(st, 2),
            .control_id = col_text(st, 3),
            .type = col_text(st, 4),
            .status = col_text(st, 5),
            .ack_code = col_text(st, 6),
            .outcome = col_text(st, 7),
            .received = sqlite3_column_int64(st, 8),
            .processed = sqlite3_column_int64(st, 9),
            .attempts = sqlite3_column_int64(st, 10),
            .next_try = sqlite3_column_int64(st, 11),
        };
        if (q->with_raw) {
            m.raw = sqlite3_column_blob(st, 12);
            m.raw_len = (size_t)sqlite3_column_bytes(st, 12);
            if (!m.raw)
                m.raw = "";
            if (sqlite3_column_type(st, 13) != SQLITE_NULL) {
                m.ack = sqlite3_column_blob(st, 13);
                m.ack_len = (size_t)sqlite3_column_bytes(st, 13);
                if (!m.ack)
                    m.ack = "";
            }
        }
        if ((res = cb(ctx, &m)))
            break;
    }
    if (!res && rc != SQLITE_DONE)
        res = herr(db, err, "listing HL7 messages");
    sqlite3_finalize(st);
    return res;
}

/*
 * postgres_hl7.c - HL7 v2 messages in the PostgreSQL backend (table
 * hl7_message, migration 4; store.h, "HL7 v2 messages"), as
 * sqlite_hl7.c does for SQLite. The raw message and its ACK are bytea:
 * v2 text need not be UTF-8. Outside a transaction each statement commits
 * on its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_int.h"

/* A bytea parameter in text form: \x followed by hex. */
static const char *hex_param(struct pg_q *q, const char *s, size_t n)
{
    static const char dig[] = "0123456789abcdef";
    char *h = ehr_arena_alloc(q->a, 2 * n + 3);
    if (!h) {
        q->oom = true;
        return NULL;
    }
    h[0] = '\\';
    h[1] = 'x';
    for (size_t i = 0; i < n; i++) {
        h[2 + 2 * i] = dig[(unsigned char)s[i] >> 4];
        h[3 + 2 * i] = dig[(unsigned char)s[i] & 15];
    }
    h[2 + 2 * n] = '\0';
    return h;
}

static int hexv(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c - 'A' + 10;
}

/* A bytea column read in text form ("\x4d53...") into b. */
static ehr_status unhex(const char *t, ehr_buf *b)
{
    if (t[0] != '\\' || t[1] != 'x')
        return ehr_buf_puts(b, t);
    for (const char *p = t + 2; p[0] && p[1]; p += 2)
        if (ehr_buf_putc(b, (char)(hexv(p[0]) * 16 + hexv(p[1]))))
            return EHR_ENOMEM;
    return ehr_buf_reserve(b, 1);
}

static int opt_text(struct pg_q *q, const char *s)
{
    return pgq_text(q, s);
}

ehr_status ehr_pg__hl7_put(ehr_store_conn *base, const ehr_store_hl7 *m, int64_t *id, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    struct pg_q q;
    pgq_init(&q);
    int p_dir = opt_text(&q, m->direction), p_peer = opt_text(&q, m->peer ? m->peer : "");
    int p_ctl = opt_text(&q, m->control_id ? m->control_id : "");
    int p_type = opt_text(&q, m->type ? m->type : ""), p_st = opt_text(&q, m->status);
    int p_ack_code = opt_text(&q, m->ack_code), p_out = opt_text(&q, m->outcome);
    int p_rec = pgq_int(&q, m->received), p_proc = pgq_int(&q, m->processed);
    int p_att = pgq_int(&q, m->attempts), p_next = pgq_int(&q, m->next_try);
    int p_raw = pgq_text(&q, hex_param(&q, m->raw ? m->raw : "", m->raw_len));
    int p_ack = pgq_text(&q, m->ack ? hex_param(&q, m->ack, m->ack_len) : NULL);
    ehr_buf_printf(&q.sql,
                   "INSERT INTO hl7_message(direction, peer, control_id, type, status, ack_code, "
                   "outcome, received, processed, attempts, next_try, raw, ack, dedup) VALUES "
                   "($%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d::bytea,$%d::bytea,"
                   "CASE WHEN $%d = 'rejected' THEN NULL ELSE $%d || chr(31) || $%d || chr(31) "
                   "|| $%d END) ON CONFLICT (dedup) DO NOTHING RETURNING id",
                   p_dir, p_peer, p_ctl, p_type, p_st, p_ack_code, p_out, p_rec, p_proc, p_att,
                   p_next, p_raw, p_ack, p_st, p_dir, p_peer, p_ctl);
    ehr_status st;
    PGresult *r = pg_dynamic(c, &q, false, &st, err, "storing an HL7 message");
    if (r && PQntuples(r) == 1) {
        *id = pg_get_i64(r, 0, 0);
        PQclear(r);
        pgq_free(&q);
        return EHR_OK;
    }
    PQclear(r);
    pgq_free(&q);
    if (!r)
        return st;
    /* a duplicate: its id */
    pgq_init(&q);
    p_dir = opt_text(&q, m->direction);
    p_peer = opt_text(&q, m->peer ? m->peer : "");
    p_ctl = opt_text(&q, m->control_id ? m->control_id : "");
    ehr_buf_printf(&q.sql,
                   "SELECT id FROM hl7_message WHERE dedup = $%d || chr(31) || $%d || chr(31) "
                   "|| $%d",
                   p_dir, p_peer, p_ctl);
    r = pg_dynamic(c, &q, true, &st, err, "looking up an HL7 message");
    pgq_free(&q);
    if (!r)
        return st;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return ehr_err_set(err, EHR_EIO, "HL7 message conflict");
    }
    *id = pg_get_i64(r, 0, 0);
    PQclear(r);
    return ehr_err_set(err, EHR_EEXISTS, "message control id already received from this sender");
}

ehr_status ehr_pg__hl7_update(ehr_store_conn *base, const ehr_store_hl7 *m, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    struct pg_q q;
    pgq_init(&q);
    int p_id = pgq_int(&q, m->id), p_st = opt_text(&q, m->status);
    int p_code = opt_text(&q, m->ack_code), p_out = opt_text(&q, m->outcome);
    int p_ack = pgq_text(&q, m->ack ? hex_param(&q, m->ack, m->ack_len) : NULL);
    int p_proc = pgq_int(&q, m->processed), p_att = pgq_int(&q, m->attempts);
    int p_next = pgq_int(&q, m->next_try);
    ehr_buf_printf(&q.sql,
                   "UPDATE hl7_message SET status = $%d, ack_code = $%d, outcome = $%d, "
                   "ack = $%d::bytea, processed = $%d, attempts = $%d, next_try = $%d "
                   "WHERE id = $%d",
                   p_st, p_code, p_out, p_ack, p_proc, p_att, p_next, p_id);
    ehr_status st;
    PGresult *r = pg_dynamic(c, &q, false, &st, err, "updating an HL7 message");
    pgq_free(&q);
    if (!r)
        return st;
    bool changed = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    if (!changed)
        return ehr_err_set(err, EHR_ENOTFOUND, "no HL7 message %lld", (long long)m->id);
    return EHR_OK;
}

static const char *col(const PGresult *r, int row, int i)
{
    return PQgetisnull(r, row, i) ? NULL : PQgetvalue(r, row, i);
}

ehr_status ehr_pg__hl7_list(ehr_store_conn *base, const ehr_store_hl7_q *hq, ehr_store_hl7_cb cb,
                            void *ctx, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    struct pg_q q;
    pgq_init(&q);
    ehr_buf_printf(&q.sql,
                   "SELECT id, direction, peer, control_id, type, status, ack_code, outcome, "
                   "received, processed, attempts, next_try, %s FROM hl7_message WHERE true",
                   hq->with_raw ? "raw, ack" : "NULL, NULL");
    if (hq->id)
        ehr_buf_printf(&q.sql, " AND id = $%d", pgq_int(&q, hq->id));
    if (hq->direction)
        ehr_buf_printf(&q.sql, " AND direction = $%d", pgq_text(&q, hq->direction));
    if (hq->peer)
        ehr_buf_printf(&q.sql, " AND peer = $%d", pgq_text(&q, hq->peer));
    if (hq->control_id)
        ehr_buf_printf(&q.sql, " AND control_id = $%d", pgq_text(&q, hq->control_id));
    if (hq->status)
        ehr_buf_printf(&q.sql, " AND status = $%d", pgq_text(&q, hq->status));
    if (hq->due_before)
        ehr_buf_printf(&q.sql, " AND next_try <= $%d", pgq_int(&q, hq->due_before));
    ehr_buf_printf(&q.sql, " ORDER BY id %s", hq->oldest_first ? "ASC" : "DESC");
    if (hq->limit)
        ehr_buf_printf(&q.sql, " LIMIT $%d", pgq_int(&q, (int64_t)hq->limit));
    ehr_status st;
    PGresult *r = pg_dynamic(c, &q, true, &st, err, "listing HL7 messages");
    pgq_free(&q);
    if (!r)
        return st;
    ehr_status res = EHR_OK;
    ehr_buf raw = EHR_BUF_INIT, ack = EHR_BUF_INIT;
    for (int i = 0; i < PQntuples(r) && !res; i++) {
        ehr_store_hl7 m = {
            .id = pg_get_i64(r, i, 0),
            .direction = col(r, i, 1),
            .peer = col(r, i, 2),
            .control_id = col(r, i, 3),
            .type = col(r, i, 4),
            .status = col(r, i, 5),
            .ack_code = col(r, i, 6),
            .outcome = col(r, i, 7),
            .received = pg_get_i64(r, i, 8),
            .processed = pg_get_i64(r, i, 9),
            .attempts = pg_get_i64(r, i, 10),
            .next_try = pg_get_i64(r, i, 11),
        };
        if (hq->with_raw) {
            ehr_buf_reset(&raw);
            ehr_buf_reset(&ack);
            if (unhex(PQgetvalue(r, i, 12), &raw)) {
                res = EHR_ENOMEM;
                break;
            }
            m.raw = raw.data ? raw.data : "";
            m.raw_len = raw.len;
            if (!PQgetisnull(r, i, 13)) {
                if (unhex(PQgetvalue(r, i, 13), &ack)) {
                    res = EHR_ENOMEM;
                    break;
                }
                m.ack = ack.data ? ack.data : "";
                m.ack_len = ack.len;
            }
        }
        res = cb(ctx, &m);
    }
    ehr_buf_free(&raw);
    ehr_buf_free(&ack);
    PQclear(r);
    return res;
}

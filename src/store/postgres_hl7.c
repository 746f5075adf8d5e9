/*
 * postgres_hl7.c - HL7 v2 messages in the PostgreSQL backend (table
 * hl7_message, migration 4; store.h, "HL7 v2 messages"), as sqlite_hl7.c.
 *
 * The raw message and its ACK are bytea (sent in binary, read back from
 * the hex text form). Outside a transaction each statement commits on its
 * own, durably (synchronous_commit on): a message is stored when hl7_put
 * returns. Uniqueness of (direction, peer, control id) is the dedup
 * column's unique index, so two servers receiving the same message agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_int.h"

static const char *nz(const char *s)
{
    return s ? s : "";
}

/* The bytes as hex text (binary-safe whatever a message holds); NULL for
   NULL. Caller frees. */
static char *hex(const char *p, size_t n)
{
    if (!p)
        return NULL;
    static const char digits[] = "0123456789abcdef";
    char *h = malloc(2 * n + 1);
    for (size_t i = 0; h && i < n; i++) {
        h[2 * i] = digits[(unsigned char)p[i] >> 4];
        h[2 * i + 1] = digits[(unsigned char)p[i] & 15];
    }
    if (h)
        h[2 * n] = '\0';
    return h;
}

ehr_status ehr_pg__hl7_put(ehr_store_conn *base, const ehr_store_hl7 *m, int64_t *id, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    char *raw = hex(m->raw ? m->raw : "", m->raw_len), *ack = hex(m->ack, m->ack_len);
    if (!raw || (m->ack && !ack)) {
        free(raw);
        free(ack);
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    }
    struct pg_q q;
    pgq_init(&q);
    int d = pgq_text(&q, m->direction), p = pgq_text(&q, nz(m->peer)),
        k = pgq_text(&q, nz(m->control_id)), s = pgq_text(&q, m->status);
    int t = pgq_text(&q, nz(m->type)), ac = pgq_text(&q, m->ack_code), o = pgq_text(&q, m->outcome);
    int rc = pgq_int(&q, m->received), pr = pgq_int(&q, m->processed),
        at = pgq_int(&q, m->attempts), nt = pgq_int(&q, m->next_try);
    int rw = pgq_text(&q, raw), ak = pgq_text(&q, ack);
    free(raw);
    free(ack);
    ehr_buf_printf(
        &q.sql,
        "INSERT INTO hl7_message(direction, peer, control_id, type, status, ack_code, outcome, "
        "received, processed, attempts, next_try, raw, ack, dedup) VALUES ($%d::text, $%d::text, "
        "$%d::text, $%d::text, $%d::text, $%d::text, $%d::text, $%d::bigint, $%d::bigint, "
        "$%d::bigint, $%d::bigint, decode($%d::text, 'hex'), decode($%d::text, 'hex'), "
        "CASE WHEN $%d::text = 'rejected' THEN NULL ELSE $%d::text || chr(31) || $%d::text || "
        "chr(31) || $%d::text END) ON CONFLICT (dedup) DO NOTHING RETURNING id",
        d, p, k, t, s, ac, o, rc, pr, at, nt, rw, ak, s, d, p, k);
    ehr_status st;
    PGresult *r = pg_dynamic(c, &q, false, &st, err, "storing an HL7 message");
    pgq_free(&q);
    if (!r)
        return st;
    if (PQntuples(r) == 1) {
        *id = pg_get_i64(r, 0, 0);
        PQclear(r);
        return EHR_OK;
    }
    PQclear(r);
    /* already there: its id */
    pgq_init(&q);
    ehr_buf_printf(&q.sql,
                   "SELECT id FROM hl7_message WHERE dedup = $%d::text || chr(31) || $%d::text "
                   "|| chr(31) || $%d::text",
                   pgq_text(&q, m->direction), pgq_text(&q, nz(m->peer)),
                   pgq_text(&q, nz(m->control_id)));
    r = pg_dynamic(c, &q, false, &st, err, "looking up an HL7 message");
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
    char *ackh = hex(m->ack, m->ack_len);
    if (m->ack && !ackh) {
        pgq_free(&q);
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    }
    ehr_buf_printf(&q.sql,
                   "UPDATE hl7_message SET status = $%d::text, ack_code = $%d::text, "
                   "outcome = $%d::text, ack = decode($%d::text, 'hex'), processed = $%d::bigint, "
                   "attempts = $%d::bigint, next_try = $%d::bigint WHERE id = $%d::bigint",
                   pgq_text(&q, m->status), pgq_text(&q, m->ack_code), pgq_text(&q, m->outcome),
                   pgq_text(&q, ackh), pgq_int(&q, m->processed), pgq_int(&q, m->attempts),
                   pgq_int(&q, m->next_try), pgq_int(&q, m->id));
    free(ackh);
    ehr_status st;
    PGresult *r = pg_dynamic(c, &q, false, &st, err, "updating an HL7 message");
    pgq_free(&q);
    if (!r)
        return st;
    bool none = !strcmp(PQcmdTuples(r), "0");
    PQclear(r);
    if (none)
        return ehr_err_set(err, EHR_ENOTFOUND, "no HL7 message %lld", (long long)m->id);
    return EHR_OK;
}

static const char *val(PGresult *r, int i, int j)
{
    return PQgetisnull(r, i, j) ? NULL : PQgetvalue(r, i, j);
}

ehr_status ehr_pg__hl7_list(ehr_store_conn *base, const ehr_store_hl7_q *hq, ehr_store_hl7_cb cb,
                            void *ctx, ehr_err *err)
{
    struct pg_conn *c = (struct pg_conn *)base;
    struct pg_q q;
    pgq_init(&q);
    ehr_buf *b = &q.sql;
    ehr_buf_printf(b,
                   "SELECT id, direction, peer, control_id, type, status, ack_code, outcome, "
                   "received, processed, attempts, next_try, %s FROM hl7_message WHERE true",
                   hq->with_raw ? "encode(raw, 'hex'), encode(ack, 'hex')" : "NULL, NULL");
    if (hq->id)
        ehr_buf_printf(b, " AND id = $%d::bigint", pgq_int(&q, hq->id));
    if (hq->direction)
        ehr_buf_printf(b, " AND direction = $%d::text", pgq_text(&q, hq->direction));
    if (hq->peer)
        ehr_buf_printf(b, " AND peer = $%d::text", pgq_text(&q, hq->peer));
    if (hq->control_id)
        ehr_buf_printf(b, " AND control_id = $%d::text", pgq_text(&q, hq->control_id));
    if (hq->status)
        ehr_buf_printf(b, " AND status = $%d::text", pgq_text(&q, hq->status));
    if (hq->due_before)
        ehr_buf_printf(b, " AND next_try <= $%d::bigint", pgq_int(&q, hq->due_before));
    ehr_buf_printf(b, " ORDER BY id %s", hq->oldest_first ? "ASC" : "DESC");
    if (hq->limit)
        ehr_buf_printf(b, " LIMIT %zu", hq->limit);
    ehr_status st;
    PGresult *r = pg_dynamic(c, &q, true, &st, err, "listing HL7 messages");
    pgq_free(&q);
    if (!r)
        return st;
    for (int i = 0; !st && i < PQntuples(r); i++) {
        ehr_store_hl7 m = {
            .id = pg_get_i64(r, i, 0),
            .direction = val(r, i, 1),
            .peer = val(r, i, 2),
            .control_id = val(r, i, 3),
            .type = val(r, i, 4),
            .status = val(r, i, 5),
            .ack_code = val(r, i, 6),
            .outcome = val(r, i, 7),
            .received = pg_get_i64(r, i, 8),
            .processed = pg_get_i64(r, i, 9),
            .attempts = pg_get_i64(r, i, 10),
            .next_try = pg_get_i64(r, i, 11),
        };
        unsigned char *raw = NULL, *ack = NULL;
        if (hq->with_raw) {
            /* hex text back to bytes */
            size_t n = (size_t)PQgetlength(r, i, 12) / 2;
            raw = malloc(n + 1);
            const char *h = PQgetvalue(r, i, 12);
            for (size_t k = 0; raw && k < n; k++)
                sscanf(h + 2 * k, "%2hhx", &raw[k]);
            if (raw)
                raw[n] = '\0';
            m.raw = raw ? (const char *)raw : "";
            m.raw_len = raw ? n : 0;
            if (!PQgetisnull(r, i, 13)) {
                size_t an = (size_t)PQgetlength(r, i, 13) / 2;
                ack = malloc(an + 1);
                const char *ah = PQgetvalue(r, i, 13);
                for (size_t k = 0; ack && k < an; k++)
                    sscanf(ah + 2 * k, "%2hhx", &ack[k]);
                if (ack)
                    ack[an] = '\0';
                m.ack = ack ? (const char *)ack : "";
                m.ack_len = ack ? an : 0;
            }
            if (!raw || (!PQgetisnull(r, i, 13) && !ack))
                st = ehr_err_set(err, EHR_ENOMEM, "out of memory");
        }
        if (!st)
            st = cb(ctx, &m);
        free(raw);
        free(ack);
    }
    PQclear(r);
    return st;
}

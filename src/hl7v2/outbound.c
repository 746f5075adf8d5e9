/*
 * outbound.c - Immunizations to a registry as VXU^V04 over MLLP, from a
 * persistent queue (outbound.h). Message content follows the CDC's HL7
 * Version 2.5.1 Implementation Guide for Immunization Messaging, release
 * 1.5: MSH-21 Z22^CDCPHINVS, PID, ORC (RE), RXA, RXR.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/json.h"
#include "core/util.h"
#include "hl7v2/hl7v2.h"
#include "hl7v2/mllp.h"
#include "hl7v2/outbound.h"
#include "search/search.h"

struct ehr_hl7_outbound {
    ehr_repo *repo;
    ehr_hl7_outbound_config cfg;
    char peer[300];
    pthread_t th;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
};

static const ehr_hl7_msg seps = {
    .field_sep = '|', .comp_sep = '^', .rep_sep = '~', .esc = '\\', .sub_sep = '&'};

/* FHIR date/dateTime -> DTM: "2024-03-01T10:15:00-05:00" -> "20240301101500-0500" */
static void to_dtm(const char *f, char *out, size_t cap)
{
    size_t o = 0;
    const char *p = f;
    for (; *p && o + 1 < cap; p++) {
        if (*p >= '0' && *p <= '9')
            out[o++] = *p;
        else if (*p == '.' || *p == 'Z' || ((*p == '+' || *p == '-') && p - f > 10))
            break;
    }
    /* fractions dropped; the zone kept */
    while (*p == '.' || (*p >= '0' && *p <= '9'))
        p++;
    if ((*p == '+' || *p == '-') && strlen(p) >= 6 && o + 6 < cap) {
        out[o++] = p[0];
        out[o++] = p[1];
        out[o++] = p[2];
        out[o++] = p[4];
        out[o++] = p[5];
    } else if (*p == 'Z' && o + 6 < cap) {
        memcpy(out + o, "+0000", 5);
        o += 5;
    }
    out[o] = '\0';
}

static void put(ehr_buf *b, const char *s)
{
    if (s)
        ehr_hl7_escape(&seps, s, b);
}

static const json_t *coding0(const json_t *cc)
{
    return json_array_get(json_object_get(cc, "coding"), 0);
}

/* The assigning authority for PID-3 from an Identifier.system. */
static void authority(const char *sys, ehr_buf *b)
{
    if (!sys)
        return;
    if (!strncmp(sys, "urn:ehr:hl7v2:id:", 17)) {
        put(b, sys + 17);
    } else if (!strncmp(sys, "urn:oid:", 8)) {
        ehr_buf_puts(b, "&");
        put(b, sys + 8);
        ehr_buf_puts(b, "&ISO");
    } else {
        put(b, sys);
    }
}

/*
 * The patient as PID-3 to PID-11 (pid) or QPD-3 to QPD-8: identifiers,
 * name, birth date, sex, address; the mother's maiden name (PID-6, QPD-5)
 * is not kept -- shared by VXU's PID and QBP's QPD.
 */
static void patient_fields(const json_t *patient, bool pid, ehr_buf *b)
{
    size_t i, n = 0;
    json_t *id;
    json_array_foreach(json_object_get(patient, "identifier"), i, id)
    {
        const char *v = ehr_json_get_string(id, "value");
        if (!v)
            continue;
        if (n++)
            ehr_buf_putc(b, '~');
        put(b, v);
        ehr_buf_puts(b, "^^^");
        authority(ehr_json_get_string(id, "system"), b);
        const char *type = ehr_json_get_string(coding0(json_object_get(id, "type")), "code");
        ehr_buf_putc(b, '^');
        put(b, type ? type : "MR");
    }
    if (n++)
        ehr_buf_putc(b, '~');
    put(b, ehr_json_get_string(patient, "id"));
    ehr_buf_puts(b, pid ? "^^^EHR^PI||" : "^^^EHR^PI|"); /* PID-4 between */
    const json_t *name = json_array_get(json_object_get(patient, "name"), 0);
    put(b, ehr_json_get_string(name, "family"));
    ehr_buf_putc(b, '^');
    put(b, ehr_json_string(json_array_get(json_object_get(name, "given"), 0)));
    ehr_buf_putc(b, '^');
    put(b, ehr_json_string(json_array_get(json_object_get(name, "given"), 1)));
    ehr_buf_puts(b, "^^^^L||");
    const char *bd = ehr_json_get_string(patient, "birthDate");
    if (bd) {
        char dtm[40];
        to_dtm(bd, dtm, sizeof dtm);
        ehr_buf_puts(b, dtm);
    }
    const char *g = ehr_json_get_string(patient, "gender");
    ehr_buf_printf(b, "|%s|",
                   !g                     ? ""
                   : !strcmp(g, "female") ? "F"
                   : !strcmp(g, "male")   ? "M"
                                          : "U");
    if (pid)
        ehr_buf_puts(b, "||"); /* PID-9, PID-10 */
    const json_t *ad = json_array_get(json_object_get(patient, "address"), 0);
    if (ad) {
        put(b, ehr_json_string(json_array_get(json_object_get(ad, "line"), 0)));
        ehr_buf_putc(b, '^');
        put(b, ehr_json_string(json_array_get(json_object_get(ad, "line"), 1)));
        ehr_buf_putc(b, '^');
        put(b, ehr_json_get_string(ad, "city"));
        ehr_buf_putc(b, '^');
        put(b, ehr_json_get_string(ad, "state"));
        ehr_buf_putc(b, '^');
        put(b, ehr_json_get_string(ad, "postalCode"));
        ehr_buf_putc(b, '^');
        put(b, ehr_json_get_string(ad, "country"));
        ehr_buf_puts(b, "^H");
    }
}

static void msh(const ehr_hl7_outbound_config *cfg, const char *type, const char *control_id,
                const char *profile, ehr_buf *b)
{
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y%m%d%H%M%S+0000", &tm);
    ehr_buf_puts(b, "MSH|^~\\&|");
    put(b, cfg->app ? cfg->app : "EHR");
    ehr_buf_putc(b, '|');
    put(b, cfg->facility ? cfg->facility : "EHR");
    ehr_buf_putc(b, '|');
    put(b, cfg->registry_app);
    ehr_buf_putc(b, '|');
    put(b, cfg->registry_facility);
    ehr_buf_printf(b, "|%s||%s|", now, type);
    put(b, control_id);
    ehr_buf_printf(b, "|P|2.5.1|||ER|AL|||||%s\r", profile);
}

ehr_status ehr_hl7_qbp_build(const json_t *patient, const ehr_hl7_outbound_config *cfg,
                             const char *control_id, const char *query_tag, ehr_buf *out,
                             ehr_err *err)
{
    if (!json_object_get(patient, "name") || !ehr_json_get_string(patient, "birthDate"))
        return ehr_err_set(err, EHR_EINVAL,
                           "a history query needs the patient's name and birth date (QPD-4, "
                           "QPD-6)");
    msh(cfg, "QBP^Q11^QBP_Q11", control_id, "Z34^CDCPHINVS", out);
    ehr_buf_puts(out, "QPD|Z34^Request Immunization History^CDCPHINVS|");
    put(out, query_tag);
    ehr_buf_putc(out, '|');
    patient_fields(patient, false, out);
    ehr_buf_puts(out, "\rRCP|I|20^RD&Records&HL70126\r");
    return EHR_OK;
}

ehr_status ehr_hl7_vxu_build(const json_t *imm, const json_t *patient,
                             const ehr_hl7_outbound_config *cfg, const char *control_id,
                             ehr_buf *out, ehr_err *err)
{
    const json_t *vc = coding0(json_object_get(imm, "vaccineCode"));
    const char *cvx = ehr_json_get_string(vc, "code");
    const char *when = ehr_json_get_string(imm, "occurrenceDateTime");
    if (!cvx)
        return ehr_err_set(err, EHR_EINVAL, "Immunization.vaccineCode has no code (RXA-5)");
    if (!when)
        return ehr_err_set(err, EHR_EINVAL,
                           "Immunization.occurrenceDateTime is required for RXA-3");
    char dtm[40];
    ehr_buf *b = out;
    msh(cfg, "VXU^V04^VXU_V04", control_id, "Z22^CDCPHINVS", b);
    /* PID: identifiers (the patient's, then ours), name, birth date, sex, address */
    ehr_buf_puts(b, "PID|1||");
    patient_fields(patient, true, b);
    ehr_buf_putc(b, '\r');
    /* ORC: the dose's id as filler order number */
    ehr_buf_puts(b, "ORC|RE||");
    put(b, ehr_json_get_string(imm, "id"));
    ehr_buf_puts(b, "^EHR\r");
    /* RXA */
    to_dtm(when, dtm, sizeof dtm);
    ehr_buf_printf(b, "RXA|0|1|%s||", dtm);
    put(b, cvx);
    ehr_buf_putc(b, '^');
    put(b, ehr_json_get_string(vc, "display"));
    const char *sys = ehr_json_get_string(vc, "system");
    ehr_buf_puts(b, sys && !strcmp(sys, "http://hl7.org/fhir/sid/ndc") ? "^NDC|" : "^CVX|");
    const json_t *dose = json_object_get(imm, "doseQuantity");
    const char *dv = ehr_json_number_text(json_object_get(dose, "value"));
    if (dv) {
        ehr_buf_puts(b, dv);
        ehr_buf_putc(b, '|');
        const char *uc = ehr_json_get_string(dose, "code");
        const char *un = ehr_json_get_string(dose, "unit");
        if (uc || un) {
            put(b, uc ? uc : un);
            ehr_buf_putc(b, '^');
            put(b, un ? un : uc);
            ehr_buf_puts(b, "^UCUM");
        }
    } else {
        ehr_buf_puts(b, "999|"); /* amount unknown (CDC IG: 999) */
    }
    json_t *ps = json_object_get(imm, "primarySource");
    ehr_buf_puts(b, json_is_false(ps) ? "||01^Historical Administration^NIP001"
                                      : "||00^New Immunization Record^NIP001");
    ehr_buf_puts(b, "||||||");
    put(b, ehr_json_get_string(imm, "lotNumber"));
    ehr_buf_putc(b, '|');
    const char *exp = ehr_json_get_string(imm, "expirationDate");
    if (exp) {
        to_dtm(exp, dtm, sizeof dtm);
        ehr_buf_puts(b, dtm);
    }
    ehr_buf_putc(b, '|');
    const json_t *mf = json_object_get(imm, "manufacturer");
    if (mf && ehr_json_get_string(mf, "display")) {
        ehr_buf_putc(b, '^');
        put(b, ehr_json_get_string(mf, "display"));
    }
    const char *status = ehr_json_get_string(imm, "status");
    bool not_done = status && !strcmp(status, "not-done");
    bool deleted = status && !strcmp(status, "entered-in-error");
    ehr_buf_puts(b, "|||");
    ehr_buf_puts(b, not_done ? "RE" : "CP");
    ehr_buf_puts(b, deleted ? "|D\r" : "|A\r");
    const json_t *route = coding0(json_object_get(imm, "route"));
    const json_t *site = coding0(json_object_get(imm, "site"));
    if (route || site) {
        ehr_buf_puts(b, "RXR|");
        if (route) {
            put(b, ehr_json_get_string(route, "code"));
            ehr_buf_putc(b, '^');
            put(b, ehr_json_get_string(route, "display"));
            ehr_buf_puts(b, "^HL70162");
        }
        if (site) {
            ehr_buf_putc(b, '|');
            put(b, ehr_json_get_string(site, "code"));
            ehr_buf_putc(b, '^');
            put(b, ehr_json_get_string(site, "display"));
            ehr_buf_puts(b, "^HL70163");
        }
        ehr_buf_putc(b, '\r');
    }
    return EHR_OK;
}

/* -- the worker -- */

struct cand {
    char id[72];
    int64_t version, updated;
};

struct scan {
    size_t n, cap;
    struct cand *c;
    int64_t max_updated;
};

static ehr_status scan_cb(void *p, const ehr_store_rec *rec)
{
    struct scan *s = p;
    if (rec->last_updated > s->max_updated)
        s->max_updated = rec->last_updated;
    /* what came in over HL7 v2 is not sent back out */
    if (rec->content && memmem(rec->content, rec->content_len, "\"source\":\"urn:ehr:hl7v2:", 24))
        return EHR_OK;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        struct cand *c = realloc(s->c, cap * sizeof *c);
        if (!c)
            return EHR_ENOMEM;
        s->c = c;
        s->cap = cap;
    }
    snprintf(s->c[s->n].id, sizeof s->c[s->n].id, "%s", rec->id);
    s->c[s->n].version = rec->version;
    s->c[s->n].updated = rec->last_updated;
    s->n++;
    return EHR_OK;
}

static ehr_status exists_cb(void *p, const ehr_store_hl7 *m)
{
    (void)m;
    *(bool *)p = true;
    return EHR_OK;
}

static void checkpoint_key(ehr_hl7_outbound *ob, char *key, size_t cap)
{
    snprintf(key, cap, "vxu-checkpoint %s", ob->peer);
}

static json_t *read_json(ehr_repo *repo, const ehr_repo_ctx *ctx, const char *type, const char *id,
                         ehr_err *err)
{
    ehr_repo_out o = {0};
    json_t *j = NULL;
    if (!ehr_repo_read(repo, ctx, type, id, 0, &o, err))
        j = ehr_json_parse(o.body.data, o.body.len, err);
    ehr_repo_out_free(&o);
    return j;
}

/* Queue a VXU for every Immunization recorded since the checkpoint. */
static void scan(ehr_hl7_outbound *ob, const ehr_repo_ctx *ctx)
{
    ehr_store_conn *c;
    ehr_err err = {{0}};
    if (ehr_repo_conn(ob->repo, &c, &err))
        return;
    char key[400];
    checkpoint_key(ob, key, sizeof key);
    ehr_buf doc = EHR_BUF_INIT;
    int64_t since = 0;
    ehr_status st = EHR_STORE_CALL(c, obj_get, "hl7v2", key, &doc, &err);
    if (st == EHR_ENOTFOUND) {
        /* first start with this registry: from now on, not the whole history */
        since = ehr_time_now_us();
    } else if (!st) {
        json_t *j = ehr_json_parse(doc.data, doc.len, NULL);
        const char *t = ehr_json_get_string(j, "since");
        if (t)
            since = strtoll(t, NULL, 10);
        json_decref(j);
    }
    ehr_buf_free(&doc);
    if (st && st != EHR_ENOTFOUND)
        return;
    ehr_arena *a = ehr_arena_new();
    char inst[EHR_INSTANT_LEN], q[64];
    ehr_time_format(since - since % 1000, inst); /* millisecond precision: ge */
    snprintf(q, sizeof q, "ge%s", inst);
    struct ehr_search_param p = {"_lastUpdated", q};
    ehr_search s;
    ehr_fhir_issues issues = EHR_FHIR_ISSUES_INIT;
    struct scan sc = {.max_updated = since};
    if (a && !ehr_search_parse("Immunization", &p, 1, true, a, &s, &issues)) {
        s.q.count = 500;
        s.q.offset = 0;
        EHR_STORE_CALL(c, search, &s.q, scan_cb, &sc, NULL, &err);
        ehr_search_done(&s);
    }
    ehr_fhir_issues_free(&issues);
    ehr_arena_free(&a);
    for (size_t i = 0; i < sc.n; i++) {
        /* MSH-10 is at most 20 characters (2.5.1): id prefix and version */
        char ctl[32];
        snprintf(ctl, sizeof ctl, "V%.12s-%lld", sc.c[i].id, (long long)sc.c[i].version);
        bool known = false;
        ehr_store_hl7_q hq = {.direction = "out", .peer = ob->peer, .control_id = ctl};
        EHR_STORE_CALL(c, hl7_list, &hq, exists_cb, &known, &err);
        if (known)
            continue;
        json_t *imm = read_json(ob->repo, ctx, "Immunization", sc.c[i].id, &err);
        const char *pref = ehr_json_get_string(json_object_get(imm, "patient"), "reference");
        json_t *pat = pref && !strncmp(pref, "Patient/", 8)
                          ? read_json(ob->repo, ctx, "Patient", pref + 8, &err)
                          : NULL;
        ehr_buf msg = EHR_BUF_INIT;
        ehr_err berr = {{0}};
        ehr_status bst = imm && pat
                             ? ehr_hl7_vxu_build(imm, pat, &ob->cfg, ctl, &msg, &berr)
                             : ehr_err_set(&berr, EHR_ENOTFOUND,
                                           "the Immunization or its Patient is not readable");
        int64_t now = ehr_time_now_us();
        ehr_store_hl7 rec = {.direction = "out",
                             .peer = ob->peer,
                             .control_id = ctl,
                             .type = "VXU^V04",
                             .status = bst ? "failed" : "queued",
                             .outcome = bst ? berr.msg : NULL,
                             .received = now,
                             .processed = bst ? now : 0,
                             .raw = msg.data ? msg.data : "",
                             .raw_len = msg.len};
        int64_t id;
        if (!EHR_STORE_CALL(c, hl7_put, &rec, &id, &err))
            ehr_log(EHR_LOG_INFO, "hl7v2: VXU %lld queued for %s%s", (long long)id, ob->peer,
                    bst ? " (cannot be built: failed)" : "");
        ehr_buf_free(&msg);
        json_decref(imm);
        json_decref(pat);
    }
    free(sc.c);
    if (sc.max_updated > since || st == EHR_ENOTFOUND) {
        char d[64];
        snprintf(d, sizeof d, "{\"since\":\"%lld\"}", (long long)sc.max_updated);
        ehr_store_obj o = {.kind = "hl7v2", .key = key, .doc = d, .doc_len = strlen(d)};
        EHR_STORE_CALL(c, obj_put, &o, false, &err);
    }
}

struct due {
    int64_t id, attempts;
    ehr_buf raw;
};

struct due_list {
    size_t n;
    struct due d[20];
};

static ehr_status due_cb(void *p, const ehr_store_hl7 *m)
{
    struct due_list *l = p;
    if (l->n >= 20)
        return EHR_OK;
    struct due *d = &l->d[l->n++];
    d->id = m->id;
    d->attempts = m->attempts;
    d->raw = (ehr_buf)EHR_BUF_INIT;
    return ehr_buf_append(&d->raw, m->raw, m->raw_len);
}

/* Send what is due; stop at the first transport failure (registry down). */
/*
 * Several servers on one database (PostgreSQL) each run this sender: a
 * message is sent by the one that takes its lease, a create-only document
 * that expires after the exchange could have timed out, so a message is
 * not sent twice at once, and a server that dies mid-send leaves it to
 * another once the lease ends. A SQLite file has one server: no lease.
 */
static bool send_lease(ehr_store_conn *c, int64_t id, unsigned timeout)
{
    if (!strcmp(c->store->ops->name, "sqlite"))
        return true;
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)id);
    ehr_store_obj o = {.kind = "hl7v2-send-lease",
                       .key = key,
                       .expires = ehr_time_now_us() + (int64_t)(2 * timeout + 10) * 1000000,
                       .doc = "{}",
                       .doc_len = 2};
    ehr_err err = {{0}};
    return EHR_STORE_CALL(c, obj_put, &o, true, &err) == EHR_OK;
}

static void send_done(ehr_store_conn *c, int64_t id)
{
    if (!strcmp(c->store->ops->name, "sqlite"))
        return;
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)id);
    ehr_err err = {{0}};
    EHR_STORE_CALL(c, obj_del, "hl7v2-send-lease", key, &err);
}

/* Still queued? (another server may have sent it since we listed it) */
static ehr_status still_cb(void *p, const ehr_store_hl7 *m)
{
    *(bool *)p = m->status && !strcmp(m->status, "queued");
    return EHR_OK;
}

static void send_due(ehr_hl7_outbound *ob)
{
    ehr_store_conn *c;
    ehr_err err = {{0}};
    if (ehr_repo_conn(ob->repo, &c, &err))
        return;
    struct due_list l = {0};
    int64_t now = ehr_time_now_us();
    ehr_store_hl7_q q = {.direction = "out",
                         .peer = ob->peer,
                         .status = "queued",
                         .due_before = now,
                         .oldest_first = true,
                         .with_raw = true,
                         .limit = 20};
    if (EHR_STORE_CALL(c, hl7_list, &q, due_cb, &l, &err) || l.n == 0) {
        for (size_t i = 0; i < l.n; i++)
            ehr_buf_free(&l.d[i].raw);
        return;
    }
    int fd = -1;
    bool down = false;
    unsigned timeout = ob->cfg.timeout ? ob->cfg.timeout : 30;
    for (size_t i = 0; i < l.n; i++) {
        struct due *d = &l.d[i];
        if (!send_lease(c, d->id, timeout))
            continue; /* another server is sending it */
        if (strcmp(c->store->ops->name, "sqlite")) {
            bool still = false;
            ehr_store_hl7_q sq = {.id = d->id};
            if (EHR_STORE_CALL(c, hl7_list, &sq, still_cb, &still, &err) || !still) {
                send_done(c, d->id);
                continue;
            }
        }
        ehr_buf ack = EHR_BUF_INIT;
        ehr_err e2 = {{0}};
        ehr_status st = down ? EHR_EIO : EHR_OK;
        if (!st && fd < 0)
            st = ehr_mllp_connect(ob->cfg.host, ob->cfg.port, (int)timeout, &fd, &e2);
        if (!st)
            st = ehr_mllp_exchange(fd, d->raw.data, d->raw.len, (int)timeout, &ack, &e2);
        ehr_store_hl7 rec = {
            .id = d->id, .attempts = d->attempts + (down ? 0 : 1), .processed = ehr_time_now_us()};
        char code[3] = "";
        if (st) {
            /* no answer: try again later, waiting 1, 2, 4 ... seconds */
            down = true;
            unsigned max = ob->cfg.max_backoff ? ob->cfg.max_backoff : 300;
            int64_t wait = rec.attempts >= 20 ? max : (int64_t)1 << (rec.attempts - 1);
            if (wait > max)
                wait = max;
            rec.status = "queued";
            rec.processed = 0;
            rec.outcome = e2.msg[0] ? e2.msg : "the registry did not answer";
            rec.next_try = ehr_time_now_us() + wait * 1000000;
            if (fd >= 0) {
                close(fd);
                fd = -1;
            }
        } else {
            const char *msa = strstr(ack.data ? ack.data : "", "MSA|");
            if (msa)
                snprintf(code, sizeof code, "%.2s", msa + 4);
            bool ok = !strcmp(code, "AA") || !strcmp(code, "CA");
            rec.status = ok ? "sent" : "failed";
            rec.ack_code = code[0] ? code : NULL;
            rec.ack = ack.data;
            rec.ack_len = ack.len;
            rec.outcome = ok ? "accepted by the registry" : "refused by the registry (see its ACK)";
        }
        EHR_STORE_CALL(c, hl7_update, &rec, &err);
        send_done(c, d->id);
        if (!st)
            ehr_log(EHR_LOG_INFO, "hl7v2: VXU %lld to %s: %s", (long long)d->id, ob->peer,
                    code[0] ? code : "no MSA");
        ehr_buf_free(&ack);
    }
    if (fd >= 0)
        close(fd);
    for (size_t i = 0; i < l.n; i++)
        ehr_buf_free(&l.d[i].raw);
}

static void *worker(void *p)
{
    ehr_hl7_outbound *ob = p;
    ehr_store_conn *c0;
    if (ehr_repo_conn(ob->repo, &c0, NULL) || !c0->store->ops->hl7_put) {
        ehr_log(EHR_LOG_ERROR, "hl7v2: this store does not keep HL7 v2 messages: no outbound");
        return NULL;
    }
    ehr_repo_ctx ctx = {.user = "system/hl7v2-outbound", .client = ob->peer, .role = "system"};
    unsigned ms = ob->cfg.interval_ms ? ob->cfg.interval_ms : 1000;
    pthread_mutex_lock(&ob->lock);
    while (!ob->stop) {
        pthread_mutex_unlock(&ob->lock);
        scan(ob, &ctx);
        send_due(ob);
        pthread_mutex_lock(&ob->lock);
        if (ob->stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&ob->cond, &ob->lock, &ts);
    }
    pthread_mutex_unlock(&ob->lock);
    return NULL;
}

ehr_status ehr_hl7_outbound_start(ehr_repo *repo, const ehr_hl7_outbound_config *cfg,
                                  ehr_hl7_outbound **out, ehr_err *err)
{
    ehr_hl7_outbound *ob = calloc(1, sizeof *ob);
    if (!ob)
        return ehr_err_set(err, EHR_ENOMEM, "out of memory");
    ob->repo = repo;
    ob->cfg = *cfg;
    snprintf(ob->peer, sizeof ob->peer, "%s:%u", cfg->host, cfg->port);
    pthread_mutex_init(&ob->lock, NULL);
    pthread_cond_init(&ob->cond, NULL);
    if (pthread_create(&ob->th, NULL, worker, ob)) {
        free(ob);
        return ehr_err_set(err, EHR_ENOMEM, "cannot start the HL7 outbound thread");
    }
    *out = ob;
    return EHR_OK;
}

void ehr_hl7_outbound_stop(ehr_hl7_outbound **obp)
{
    ehr_hl7_outbound *ob = obp ? *obp : NULL;
    if (!ob)
        return;
    pthread_mutex_lock(&ob->lock);
    ob->stop = true;
    pthread_cond_signal(&ob->cond);
    pthread_mutex_unlock(&ob->lock);
    pthread_join(ob->th, NULL);
    pthread_cond_destroy(&ob->cond);
    pthread_mutex_destroy(&ob->lock);
    free(ob);
    *obp = NULL;
}

struct found_out {
    bool found;
    bool out;
};

static ehr_status found_cb(void *p, const ehr_store_hl7 *m)
{
    struct found_out *f = p;
    f->found = true;
    f->out = !strcmp(m->direction, "out");
    return EHR_OK;
}

ehr_status ehr_hl7_resend(ehr_repo *repo, int64_t id, ehr_err *err)
{
    ehr_store_conn *c;
    ehr_status st = ehr_repo_conn(repo, &c, err);
    if (st)
        return st;
    if (!c->store->ops->hl7_list)
        return ehr_err_set(err, EHR_EUNSUPPORTED, "this store does not keep HL7 v2 messages");
    struct found_out f = {0};
    ehr_store_hl7_q q = {.id = id};
    if ((st = EHR_STORE_CALL(c, hl7_list, &q, found_cb, &f, err)))
        return st;
    if (!f.found || !f.out)
        return ehr_err_set(err, EHR_ENOTFOUND, "no outbound HL7 message %lld", (long long)id);
    ehr_store_hl7 rec = {.id = id, .status = "queued", .outcome = "queued again by an operator"};
    return EHR_STORE_CALL(c, hl7_update, &rec, err);
}

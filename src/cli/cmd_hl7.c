/*
 * cmd_hl7.c - ehr hl7 list|show|reprocess|send: the stored HL7 v2
 * messages and a small MLLP client.
 *
 *   ehr hl7 list [--db PATH] [--status S] [--direction in|out] [--limit N]
 *   ehr hl7 show [--db PATH] ID          (the raw message, CR shown as newlines, and its ACK)
 *   ehr hl7 reprocess [--db PATH] ID     (apply a stored message again; prints the ACK)
 *   ehr hl7 resend [--db PATH] ID        (queue an outbound message again; a running
 *                                         ehr serve --hl7-registry sends it)
 *   ehr hl7 map FILE                     (the FHIR transaction Bundle of each message, one
 *                                         JSON per line; nothing is stored or written)
 *   ehr hl7 query-registry [--db PATH] --patient ID --to HOST:PORT
 *        (QBP^Q11 for the patient's immunization history; the registry's RSP^K11
 *         printed as a FHIR collection Bundle of Immunizations; nothing stored)
 *   ehr hl7 send FILE --to HOST:PORT [--timeout S]
 *        (every message in FILE, batches split, over one MLLP connection;
 *         prints each ACK; exit 0 when all were AA/CA, 1 otherwise, 2 on errors)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "core/json.h"
#include "core/util.h"
#include "hl7v2/engine.h"
#include "hl7v2/mllp.h"
#include "hl7v2/outbound.h"
#include "repo/repo.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ehr hl7 list [--db PATH] [--status S] [--direction in|out] [--limit N]\n"
               "       ehr hl7 show [--db PATH] ID\n"
               "       ehr hl7 reprocess [--db PATH] ID\n"
               "       ehr hl7 resend [--db PATH] ID      (an outbound message, queued again)\n"
               "       ehr hl7 map FILE\n"
               "       ehr hl7 query-registry [--db PATH] --patient ID --to HOST:PORT\n"
               "       ehr hl7 send FILE --to HOST:PORT [--timeout SECONDS]\n");
}

static void print_er7(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        putchar(s[i] == '\r' ? '\n' : s[i]);
    if (n && s[n - 1] != '\r' && s[n - 1] != '\n')
        putchar('\n');
}

static ehr_status list_cb(void *ctx, const ehr_store_hl7 *m)
{
    (void)ctx;
    char t[EHR_INSTANT_LEN];
    ehr_time_format(m->received, t);
    printf("%-6lld %-3s %-10s %-3s %-24s %-12s %-24s %s\n", (long long)m->id, m->direction,
           m->status, m->ack_code ? m->ack_code : "-", t, m->type, m->control_id, m->peer);
    return EHR_OK;
}

static ehr_status show_cb(void *ctx, const ehr_store_hl7 *m)
{
    int *found = ctx;
    *found = 1;
    char t[EHR_INSTANT_LEN];
    ehr_time_format(m->received, t);
    printf("id: %lld\ndirection: %s\npeer: %s\ncontrol id: %s\ntype: %s\nstatus: %s\n"
           "received: %s\n",
           (long long)m->id, m->direction, m->peer, m->control_id, m->type, m->status, t);
    if (m->processed) {
        ehr_time_format(m->processed, t);
        printf("processed: %s\n", t);
    }
    if (m->attempts)
        printf("attempts: %lld\n", (long long)m->attempts);
    if (m->outcome)
        printf("outcome: %s\n", m->outcome);
    printf("\n-- message --\n");
    print_er7(m->raw, m->raw_len);
    if (m->ack) {
        printf("\n-- acknowledgement (%s) --\n", m->ack_code ? m->ack_code : "?");
        print_er7(m->ack, m->ack_len);
    }
    return EHR_OK;
}

static int with_store(int argc, char **argv, const char *cmd)
{
    struct ehr_store_opts so = {0};
    const char *status = NULL, *direction = NULL;
    unsigned long limit = 100;
    long long id = 0;
    for (int i = 2; i < argc; i++) {
        int r = ehr_opts_store(&so, argc, argv, &i);
        const char *v;
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if ((v = ehr_opts_value(argc, argv, &i, "--status")))
            status = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--direction")))
            direction = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--limit")))
            limit = strtoul(v, NULL, 10);
        else if (argv[i][0] != '-' && !id && (id = atoll(argv[i])) > 0)
            continue;
        else {
            fprintf(stderr, "ehr hl7 %s: unexpected '%s'\n", cmd, argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (strcmp(cmd, "list") && id <= 0) {
        fprintf(stderr, "ehr hl7 %s: give the message id (see ehr hl7 list)\n", cmd);
        return 2;
    }
    if (!ehr_opts_store_target(&so, "hl7"))
        return 2;
    ehr_err err = {{0}};
    ehr_repo *repo = NULL;
    if (ehr_repo_open(so.target, &repo, &err)) {
        fprintf(stderr, "ehr hl7: %s\n", err.msg);
        return 1;
    }
    ehr_store_conn *c = NULL;
    int rc = 0;
    if (ehr_repo_conn(repo, &c, &err) || !c->store->ops->hl7_list) {
        fprintf(stderr, "ehr hl7: %s\n",
                err.msg[0] ? err.msg : "this store does not keep HL7 v2 messages yet");
        ehr_repo_free(&repo);
        return 1;
    }
    if (!strcmp(cmd, "list")) {
        ehr_store_hl7_q q = {.status = status, .direction = direction, .limit = limit};
        printf("%-6s %-3s %-10s %-3s %-24s %-12s %-24s %s\n", "ID", "DIR", "STATUS", "ACK",
               "RECEIVED", "TYPE", "CONTROL ID", "PEER");
        if (EHR_STORE_CALL(c, hl7_list, &q, list_cb, NULL, &err)) {
            fprintf(stderr, "ehr hl7 list: %s\n", err.msg);
            rc = 1;
        }
    } else if (!strcmp(cmd, "show")) {
        int found = 0;
        ehr_store_hl7_q q = {.id = id, .with_raw = true};
        if (EHR_STORE_CALL(c, hl7_list, &q, show_cb, &found, &err)) {
            fprintf(stderr, "ehr hl7 show: %s\n", err.msg);
            rc = 1;
        } else if (!found) {
            fprintf(stderr, "ehr hl7 show: no message %lld\n", id);
            rc = 1;
        }
    } else if (!strcmp(cmd, "resend")) {
        if (ehr_hl7_resend(repo, id, &err)) {
            fprintf(stderr, "ehr hl7 resend: %s\n", err.msg);
            rc = 1;
        } else {
            printf("message %lld queued again\n", id);
        }
    } else {
        ehr_hl7_engine *e = NULL;
        ehr_hl7_reply r;
        ehr_repo_ctx ctx = {.user = "cli/hl7-reprocess", .client = "cli", .role = "system"};
        if (ehr_hl7_engine_new(repo, NULL, &e, &err) || ehr_hl7_reprocess(e, &ctx, id, &r, &err)) {
            fprintf(stderr, "ehr hl7 reprocess: %s\n", err.msg);
            rc = 1;
        } else {
            print_er7(r.app.data ? r.app.data : "", r.app.len);
            rc = r.code == EHR_HL7_AA ? 0 : 1;
            ehr_hl7_reply_free(&r);
        }
        ehr_hl7_engine_free(&e);
    }
    ehr_repo_free(&repo);
    return rc;
}

static bool read_file(const char *file, ehr_buf *data)
{
    FILE *f = fopen(file, "rb");
    if (!f)
        return false;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        ehr_buf_append(data, buf, n);
    fclose(f);
    return true;
}

struct map_ctx {
    const char *file;
    int n, bad;
};

static ehr_status map_one(void *p, const char *data, size_t len, int line)
{
    struct map_ctx *mc = p;
    json_t *b = NULL;
    ehr_hl7_error e = {0};
    mc->n++;
    if (ehr_hl7_to_fhir(data, len, NULL, &b, &e)) {
        mc->bad++;
        fprintf(stderr, "%s: message at line %d: %s%s%d: %s (HL7 error %d)\n", mc->file, line,
                e.seg[0] ? e.seg : "", e.seg[0] ? "-" : "", e.field, e.text, e.code);
        return EHR_OK;
    }
    char *s = ehr_json_dumps(b, EHR_JSON_COMPACT);
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(b);
    return EHR_OK;
}

static int cmd_map(int argc, char **argv)
{
    if (argc != 3) {
        usage(stderr);
        return 2;
    }
    ehr_buf data = EHR_BUF_INIT;
    if (!read_file(argv[2], &data)) {
        fprintf(stderr, "ehr hl7 map: cannot read %s\n", argv[2]);
        return 2;
    }
    struct map_ctx mc = {.file = argv[2]};
    ehr_hl7_error e = {0};
    ehr_status st = ehr_hl7_split(data.data ? data.data : "", data.len, map_one, &mc, &e);
    ehr_buf_free(&data);
    if (st) {
        fprintf(stderr, "ehr hl7 map: %s: %s\n", argv[2], e.text);
        return 2;
    }
    return mc.bad ? 1 : 0;
}

struct send_ctx {
    int fd, timeout;
    int sent, accepted, failed;
    const char *file;
};

static ehr_status send_one(void *p, const char *data, size_t len, int line)
{
    struct send_ctx *s = p;
    /* canonical segment ends: CR */
    char *m = malloc(len + 1);
    if (!m)
        return EHR_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
            continue;
        m[n++] = data[i] == '\n' ? '\r' : data[i];
    }
    while (n > 0 && m[n - 1] == '\r')
        n--;
    m[n++] = '\r';
    ehr_buf ack = EHR_BUF_INIT;
    ehr_err err = {{0}};
    ehr_status st = ehr_mllp_exchange(s->fd, m, n, s->timeout, &ack, &err);
    free(m);
    s->sent++;
    if (st) {
        fprintf(stderr, "ehr hl7 send: %s, message at line %d: %s\n", s->file, line, err.msg);
        ehr_buf_free(&ack);
        return st;
    }
    if (!ack.len) {
        printf("(the message asked for no acknowledgement: MSH-15/16)\n");
        s->accepted++;
        ehr_buf_free(&ack);
        return EHR_OK;
    }
    print_er7(ack.data ? ack.data : "", ack.len);
    const char *msa = ack.data ? strstr(ack.data, "MSA") : NULL;
    /* the last MSA is the application answer */
    for (const char *q = msa; q; q = strstr(q + 1, "MSA"))
        msa = q;
    if (msa && (!strncmp(msa + 4, "AA", 2) || !strncmp(msa + 4, "CA", 2)))
        s->accepted++;
    else
        s->failed++;
    ehr_buf_free(&ack);
    return EHR_OK;
}

static int cmd_send(int argc, char **argv)
{
    const char *file = NULL, *to = NULL;
    int timeout = 30;
    for (int i = 2; i < argc; i++) {
        const char *v;
        if ((v = ehr_opts_value(argc, argv, &i, "--to")))
            to = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--timeout")))
            timeout = atoi(v) > 0 ? atoi(v) : 30;
        else if (argv[i][0] != '-' && !file)
            file = argv[i];
        else {
            usage(stderr);
            return 2;
        }
    }
    const char *colon = to ? strrchr(to, ':') : NULL;
    if (!file || !colon || atoi(colon + 1) <= 0 || atoi(colon + 1) > 65535) {
        fprintf(stderr, "ehr hl7 send: give a FILE and --to HOST:PORT\n");
        return 2;
    }
    ehr_buf data = EHR_BUF_INIT;
    if (!read_file(file, &data)) {
        fprintf(stderr, "ehr hl7 send: cannot read %s\n", file);
        return 2;
    }
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(colon - to), to);
    struct send_ctx s = {.timeout = timeout, .file = file};
    ehr_err err = {{0}};
    if (ehr_mllp_connect(host, (uint16_t)atoi(colon + 1), timeout, &s.fd, &err)) {
        fprintf(stderr, "ehr hl7 send: %s\n", err.msg);
        ehr_buf_free(&data);
        return 2;
    }
    ehr_hl7_error he = {0};
    ehr_status st = ehr_hl7_split(data.data ? data.data : "", data.len, send_one, &s, &he);
    close(s.fd);
    ehr_buf_free(&data);
    if (st == EHR_EINVAL && he.text[0])
        fprintf(stderr, "ehr hl7 send: %s: %s\n", file, he.text);
    fprintf(stderr, "ehr hl7 send: %d sent, %d accepted, %d not\n", s.sent, s.accepted, s.failed);
    if (st)
        return 2;
    if (s.sent == 0) {
        fprintf(stderr, "ehr hl7 send: %s holds no HL7 v2 message\n", file);
        return 2;
    }
    return s.failed ? 1 : 0;
}

static int cmd_query(int argc, char **argv)
{
    struct ehr_store_opts so = {0};
    const char *patient = NULL, *to = NULL;
    int timeout = 30;
    for (int i = 2; i < argc; i++) {
        int r = ehr_opts_store(&so, argc, argv, &i);
        const char *v;
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if ((v = ehr_opts_value(argc, argv, &i, "--patient")))
            patient = !strncmp(v, "Patient/", 8) ? v + 8 : v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--to")))
            to = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--timeout")))
            timeout = atoi(v) > 0 ? atoi(v) : 30;
        else {
            usage(stderr);
            return 2;
        }
    }
    const char *colon = to ? strrchr(to, ':') : NULL;
    if (!patient || !colon || atoi(colon + 1) <= 0 || atoi(colon + 1) > 65535) {
        fprintf(stderr, "ehr hl7 query-registry: give --patient ID and --to HOST:PORT\n");
        return 2;
    }
    if (!ehr_opts_store_target(&so, "hl7"))
        return 2;
    ehr_err err = {{0}};
    ehr_repo *repo = NULL;
    if (ehr_repo_open(so.target, &repo, &err)) {
        fprintf(stderr, "ehr hl7 query-registry: %s\n", err.msg);
        return 1;
    }
    /* the read of the patient is audited: their data leaves for the registry */
    ehr_repo_ctx ctx = {.user = "cli/hl7-query-registry", .client = "cli", .role = "system"};
    ehr_repo_out o = {0};
    json_t *pat = NULL;
    if (!ehr_repo_read(repo, &ctx, "Patient", patient, 0, &o, &err))
        pat = ehr_json_parse(o.body.data, o.body.len, &err);
    ehr_repo_out_free(&o);
    ehr_repo_free(&repo);
    if (!pat) {
        fprintf(stderr, "ehr hl7 query-registry: Patient/%s: %s\n", patient, err.msg);
        return 1;
    }
    char id[EHR_ID_LEN], tag[EHR_ID_LEN];
    ehr_id_new(id);
    id[20] = '\0';
    ehr_id_new(tag);
    tag[16] = '\0';
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(colon - to), to);
    ehr_hl7_outbound_config cfg = {.host = host, .port = (uint16_t)atoi(colon + 1)};
    ehr_buf q = EHR_BUF_INIT, ack = EHR_BUF_INIT;
    int fd = -1, rc = 0;
    if (ehr_hl7_qbp_build(pat, &cfg, id, tag, &q, &err) ||
        ehr_mllp_connect(host, cfg.port, timeout, &fd, &err) ||
        ehr_mllp_exchange(fd, q.data, q.len, timeout, &ack, &err)) {
        fprintf(stderr, "ehr hl7 query-registry: %s\n", err.msg);
        rc = 1;
    } else {
        json_t *b = NULL;
        ehr_hl7_error he = {0};
        if (ehr_hl7_rsp_to_fhir(ack.data, ack.len, &b, &he)) {
            fprintf(stderr, "ehr hl7 query-registry: %s\n", he.text);
            rc = 1;
        } else {
            char *s = ehr_json_dumps(b, EHR_JSON_PRETTY);
            printf("%s\n", s ? s : "");
            free(s);
            size_t k = 0, i;
            json_t *e;
            json_array_foreach(json_object_get(b, "entry"), i, e)
            {
                const char *t = ehr_json_get_string(json_object_get(e, "resource"), "resourceType");
                k += t && !strcmp(t, "Immunization");
            }
            fprintf(stderr, "ehr hl7 query-registry: %zu immunization(s) from the registry\n", k);
        }
        json_decref(b);
    }
    if (fd >= 0)
        close(fd);
    ehr_buf_free(&q);
    ehr_buf_free(&ack);
    json_decref(pat);
    return rc;
}

int ehr_cmd_hl7(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "send"))
        return cmd_send(argc, argv);
    if (!strcmp(argv[1], "map"))
        return cmd_map(argc, argv);
    if (!strcmp(argv[1], "query-registry"))
        return cmd_query(argc, argv);
    if (!strcmp(argv[1], "list") || !strcmp(argv[1], "show") || !strcmp(argv[1], "reprocess") ||
        !strcmp(argv[1], "resend"))
        return with_store(argc, argv, argv[1]);
    usage(stderr);
    return 2;
}

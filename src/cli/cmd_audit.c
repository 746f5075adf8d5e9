/*
 * cmd_audit.c - ehr audit verify | report: checking the hash chain of the
 * audit log, and reading it (the report for admins and auditors).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "cli/commands.h"
#include "cli/opts.h"
#include "core/json.h"
#include "core/util.h"
#include "repo/repo.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ehr audit verify [--db PATH]\n"
               "       ehr audit report [--db PATH] [--break-glass] [--user U] [--patient ID]\n"
               "                        [--action A] [--since TIME] [--until TIME] [--limit N]\n"
               "                        [--fhir]\n"
               "\n"
               "verify: checks that every record of the audit log is chained to the one\n"
               "  before it (SHA-256); exit 0 when intact, else names the first bad record\n"
               "  and exits 1. It prints the last record's hash: keep it elsewhere, and a\n"
               "  later verify with --head SEQ:HASH also proves nothing was cut off the end.\n"
               "report: the records that match, oldest first (--fhir: one AuditEvent per\n"
               "  line, NDJSON); --break-glass: emergency accesses only.\n");
}

struct report {
    const char *user, *patient, *action;
    bool glass, fhir;
    size_t n;
};

static bool has_patient(const json_t *ev, const char *p)
{
    const json_t *pts = json_object_get(ev, "patients");
    for (size_t i = 0; i < json_array_size(pts); i++)
        if (!strcmp(json_string_value(json_array_get(pts, i)) ?: "", p))
            return true;
    return false;
}

static const char *field(const json_t *ev, const char *k)
{
    const char *s = json_string_value(json_object_get(ev, k));
    return s ? s : "";
}

static ehr_status report_one(void *p, int64_t seq, int64_t time, const char *hash,
                             const char *event, size_t len)
{
    struct report *r = p;
    json_t *ev = json_loadb(event, len, 0, NULL);
    if (!ev)
        return EHR_OK;
#define S(k) field(ev, k)
    bool keep = (!r->user || !strcmp(S("user"), r->user)) &&
                (!r->action || !strcmp(S("action"), r->action)) &&
                (!r->patient || has_patient(ev, r->patient)) &&
                (!r->glass || json_is_true(json_object_get(ev, "break_glass")));
    if (keep) {
        r->n++;
        if (r->fhir) {
            json_t *ae = ehr_audit_to_fhir(seq, time, event, len);
            char *line = json_dumps(ae, JSON_COMPACT);
            if (line)
                printf("%s\n", line);
            free(line);
            json_decref(ae);
        } else {
            char when[EHR_INSTANT_LEN];
            ehr_time_format(time, when);
            printf("%lld %s %s %s user=%s", (long long)seq, when, S("action"), S("outcome"),
                   S("user"));
            if (*S("app"))
                printf(" app=%s", S("app"));
            if (*S("client"))
                printf(" from=%s", S("client"));
            if (*S("type"))
                printf(" %s%s%s", S("type"), *S("id") ? "/" : "", S("id"));
            const json_t *pts = json_object_get(ev, "patients");
            for (size_t i = 0; i < json_array_size(pts); i++)
                printf("%sPatient/%s",
                       i ? "," : " patients=", json_string_value(json_array_get(pts, i)) ?: "");
            if (json_is_true(json_object_get(ev, "break_glass")))
                printf(" BREAK-GLASS");
            if (*S("reason"))
                printf(" reason=\"%s\"", S("reason"));
            if (*S("detail"))
                printf(" (%s)", S("detail"));
            printf("\n");
        }
    }
#undef S
    json_decref(ev);
    return EHR_OK;
}

struct head {
    int64_t seq;
    char hash[65];
};

static ehr_status head_one(void *p, int64_t seq, int64_t time, const char *hash, const char *event,
                           size_t len)
{
    struct head *h = p;
    h->seq = seq;
    snprintf(h->hash, sizeof h->hash, "%s", hash ? hash : "");
    return EHR_OK;
}

int ehr_cmd_audit(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1];
    struct ehr_store_opts so = {0};
    struct report r = {0};
    ehr_store_audit_q q = {0};
    const char *head = NULL;
    for (int i = 2; i < argc; i++) {
        const char *v;
        int rr = ehr_opts_store(&so, argc, argv, &i);
        if (rr < 0)
            return 2;
        if (rr > 0)
            continue;
        if (!strcmp(argv[i], "--break-glass"))
            r.glass = true;
        else if (!strcmp(argv[i], "--fhir"))
            r.fhir = true;
        else if ((v = ehr_opts_value(argc, argv, &i, "--user")))
            r.user = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--patient")))
            r.patient = !strncmp(v, "Patient/", 8) ? v + 8 : v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--action")))
            r.action = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--head")))
            head = v;
        else if ((v = ehr_opts_value(argc, argv, &i, "--limit")))
            q.limit = (size_t)strtoul(v, NULL, 10);
        else if ((v = ehr_opts_value(argc, argv, &i, "--since"))) {
            if (!ehr_time_parse(v, &q.since)) {
                fprintf(stderr, "ehr audit: '%s' is not a date or time (2026-01-31T12:00:00Z)\n",
                        v);
                return 2;
            }
        } else if ((v = ehr_opts_value(argc, argv, &i, "--until"))) {
            if (!ehr_time_parse(v, &q.until)) {
                fprintf(stderr, "ehr audit: '%s' is not a date or time (2026-01-31T12:00:00Z)\n",
                        v);
                return 2;
            }
        } else {
            fprintf(stderr, "ehr audit %s: unknown option '%s'\n", verb, argv[i]);
            return 2;
        }
    }
    if (strcmp(verb, "verify") && strcmp(verb, "report")) {
        fprintf(stderr, "ehr audit: unknown action '%s'\n", verb);
        usage(stderr);
        return 2;
    }
    if (!ehr_opts_store_target(&so, "audit"))
        return 2;
    ehr_err err = {{0}};
    ehr_repo *repo = NULL;
    if (ehr_repo_open(so.target, &repo, &err)) {
        fprintf(stderr, "ehr audit: %s\n", err.msg);
        return 1;
    }
    ehr_store_conn *c = NULL;
    int rc = 0;
    if (!strcmp(verb, "verify")) {
        int64_t n = 0, bad = 0;
        ehr_status st = ehr_repo_audit_verify(repo, &n, &bad, &err);
        if (st) {
            if (bad)
                printf("ehr audit: BROKEN at record %lld: %s\n"
                       "(%lld records before it are intact; records from %lld on may have been "
                       "changed, deleted, inserted or reordered)\n",
                       (long long)bad, err.msg, (long long)n, (long long)bad);
            else
                fprintf(stderr, "ehr audit: %s\n", err.msg);
            rc = 1;
        } else {
            printf("ehr audit: %lld records, the chain is intact\n", (long long)n);
            struct head h = {0};
            ehr_store_audit_q hq = {.limit = 1, .newest_first = true};
            if (!ehr_repo_conn(repo, &c, NULL) && n > 0 &&
                !EHR_STORE_CALL(c, audit_list, &hq, head_one, &h, NULL))
                printf("ehr audit: head %lld:%s\n", (long long)h.seq, h.hash);
            if (head) {
                /* the head recorded earlier must still be in the chain */
                struct head old = {0};
                long long hs = strtoll(head, NULL, 10);
                const char *colon = strchr(head, ':');
                ehr_store_audit_q oq = {.from_seq = hs, .limit = 1};
                if (!colon || hs <= 0 || !c ||
                    EHR_STORE_CALL(c, audit_list, &oq, head_one, &old, NULL) || old.seq != hs ||
                    strcmp(old.hash, colon + 1)) {
                    printf("ehr audit: BROKEN: the head %s is not in the log (records were cut "
                           "off the end, or the log was replaced)\n",
                           head);
                    rc = 1;
                }
            }
        }
    } else {
        /* a running server's journal: its records into the chain first */
        if (ehr_repo_audit_sync(repo, &err) || ehr_repo_conn(repo, &c, &err) ||
            EHR_STORE_CALL(c, audit_list, &q, report_one, &r, &err)) {
            fprintf(stderr, "ehr audit report: %s\n", err.msg);
            rc = 1;
        } else if (!r.fhir) {
            fprintf(stderr, "ehr audit report: %zu records\n", r.n);
        }
    }
    ehr_repo_free(&repo);
    return rc;
}

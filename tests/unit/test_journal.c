/*
 * Unit tests for the audit journal (src/audit/journal.h) and its use by the
 * repository (src/repo/auditj.c): format, torn tail, CRC damage, rotation,
 * locking, and replay into the audit chain that applies each record once.
 */
/* cmocka needs these first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */
#include <fcntl.h>
#include <sys/stat.h>
#include <zlib.h>

#include "audit/journal.h"
#include "core/json.h"
#include "repo/repo.h"
#include "store/store.h"
#include "testutil.h"

struct fixture {
    char dir[64];
    char db[128];
    char path[160]; /* the journal */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    test_tmpdir(f->dir, sizeof f->dir);
    snprintf(f->db, sizeof f->db, "%s/t.db", f->dir);
    snprintf(f->path, sizeof f->path, "%s/t.db.audit-journal", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    test_rmdir(f->dir);
    free(f);
    return 0;
}

/* What a read passed on. */
struct got {
    size_t n;
    int64_t off[16], next[16], time[16];
    char ev[16][128];
};

static ehr_status got_cb(void *p, int64_t off, int64_t next, int64_t time, const char *event,
                         size_t len)
{
    struct got *g = p;
    assert_true(g->n < 16 && len < 128);
    g->off[g->n] = off;
    g->next[g->n] = next;
    g->time[g->n] = time;
    memcpy(g->ev[g->n], event, len);
    g->ev[g->n][len] = '\0';
    g->n++;
    return EHR_OK;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *buf = calloc(1, 1 << 16);
    *len = fread(buf, 1, (1 << 16) - 1, fp);
    fclose(fp);
    return buf;
}

static void append_raw(const char *path, const char *bytes)
{
    FILE *fp = fopen(path, "ab");
    assert_non_null(fp);
    fputs(bytes, fp);
    fclose(fp);
}

static const char *EV[] = {"{\"action\":\"read\",\"id\":\"a\"}",
                           "{\"action\":\"read\",\"id\":\"bb\"}",
                           "{\"action\":\"search\",\"n\":3}"};

/* three records at times 1000, 2000, 3000 into a new journal of generation gen */
static void write_three(const char *path, int64_t gen)
{
    ehr_journal *j = NULL;
    ehr_err err;
    assert_int_equal(ehr_journal_open(path, gen, false, &j, &err), EHR_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ehr_journal_append(j, 1000 * (i + 1), EV[i], strlen(EV[i]), &err), EHR_OK);
    ehr_journal_free(&j);
}

static void test_format(void **state)
{
    struct fixture *f = *state;
    write_three(f->path, 7);
    size_t len;
    char *text = slurp(f->path, &len);
    /* the header, then each line: CRC-32 of the rest of the line, length, time, event */
    const char *head = "EHR-AUDIT-JOURNAL 1 7 6 0\n";
    assert_memory_equal(text, head, strlen(head));
    char *line = text + strlen(head);
    for (int i = 0; i < 3; i++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        char want[256];
        snprintf(want, sizeof want, "%zu %d %s", strlen(EV[i]), 1000 * (i + 1), EV[i]);
        assert_int_equal((size_t)(nl - line - 9), strlen(want));
        assert_memory_equal(line + 9, want, strlen(want));
        char crc[9];
        snprintf(crc, sizeof crc, "%08lx", crc32(0L, (const Bytef *)want, (uInt)strlen(want)));
        assert_memory_equal(line, crc, 8);
        line = nl + 1;
    }
    assert_int_equal((size_t)(line - text), len);
    free(text);

    ehr_journal *j = NULL;
    ehr_err err;
    assert_int_equal(ehr_journal_open(f->path, 99, false, &j, &err), EHR_OK);
    assert_int_equal(ehr_journal_generation(j), 7); /* an existing file keeps its own */
    assert_int_equal(ehr_journal_start(j), (int64_t)strlen(head));
    assert_int_equal(ehr_journal_end(j), (int64_t)len);
    struct got g = {0};
    ehr_journal_scan scan;
    assert_int_equal(ehr_journal_read(j, ehr_journal_start(j), 0, 0, got_cb, &g, &scan, &err),
                     EHR_OK);
    assert_int_equal(g.n, 3);
    assert_int_equal(scan.n_records, 3);
    assert_false(scan.torn);
    assert_int_equal(scan.n_damaged, 0);
    assert_int_equal(scan.end, (int64_t)len);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(g.ev[i], EV[i]);
        assert_int_equal(g.time[i], 1000 * (i + 1));
        if (i)
            assert_int_equal(g.off[i], g.next[i - 1]);
    }
    /* a limit stops the read where the next one goes on */
    struct got g2 = {0};
    assert_int_equal(ehr_journal_read(j, ehr_journal_start(j), 0, 2, got_cb, &g2, &scan, &err),
                     EHR_OK);
    assert_int_equal(g2.n, 2);
    assert_int_equal(scan.end, g.off[2]);
    /* limits on what a record may hold */
    assert_int_equal(ehr_journal_append(j, 1, "{\"a\":\n1}", 8, &err), EHR_ELIMIT);
    char *big = malloc(EHR_JOURNAL_MAX_EVENT + 2);
    memset(big, 'x', EHR_JOURNAL_MAX_EVENT + 1);
    assert_int_equal(ehr_journal_append(j, 1, big, EHR_JOURNAL_MAX_EVENT + 1, &err), EHR_ELIMIT);
    free(big);
    assert_int_equal(ehr_journal_end(j), (int64_t)len);
    ehr_journal_free(&j);
}

static void test_torn_tail(void **state)
{
    struct fixture *f = *state;
    write_three(f->path, 1);
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    /* a write cut short: the start of a record, no newline */
    append_raw(f->path, "0badc0de 27 4000 {\"action\":\"re");
    ehr_journal *j = NULL;
    ehr_err err;
    assert_int_equal(ehr_journal_open(f->path, 1, false, &j, &err), EHR_OK);
    struct got g = {0};
    ehr_journal_scan scan;
    assert_int_equal(ehr_journal_read(j, ehr_journal_start(j), 0, 0, got_cb, &g, &scan, &err),
                     EHR_OK);
    assert_int_equal(g.n, 3);
    assert_true(scan.torn);
    assert_int_equal(scan.n_damaged, 0);
    assert_int_equal(scan.end, (int64_t)sb.st_size);
    ehr_journal_free(&j);
    /* a complete-looking last line with a wrong CRC is torn too */
    truncate(f->path, sb.st_size);
    append_raw(f->path, "00000000 2 4000 {}\n");
    assert_int_equal(ehr_journal_open(f->path, 1, false, &j, &err), EHR_OK);
    memset(&g, 0, sizeof g);
    assert_int_equal(ehr_journal_read(j, ehr_journal_start(j), 0, 0, got_cb, &g, &scan, &err),
                     EHR_OK);
    assert_int_equal(g.n, 3);
    assert_true(scan.torn);
    assert_int_equal(scan.end, (int64_t)sb.st_size);
    ehr_journal_free(&j);
}

static void test_crc_damage(void **state)
{
    struct fixture *f = *state;
    write_three(f->path, 1);
    size_t len;
    char *text = slurp(f->path, &len);
    /* change one byte of the second record's event: "bb" -> "bc" */
    char *p = strstr(text, "\"bb\"");
    assert_non_null(p);
    int64_t rec2 = 0;
    for (char *q = p; q > text; q--)
        if (q[-1] == '\n') {
            rec2 = q - text;
            break;
        }
    int fd = open(f->path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "c", 1, (p - text) + 2), 1);
    close(fd);
    free(text);
    ehr_journal *j = NULL;
    ehr_err err;
    assert_int_equal(ehr_journal_open(f->path, 1, false, &j, &err), EHR_OK);
    struct got g = {0};
    ehr_journal_scan scan;
    assert_int_equal(ehr_journal_read(j, ehr_journal_start(j), 0, 0, got_cb, &g, &scan, &err),
                     EHR_OK);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.ev[0], EV[0]);
    assert_string_equal(g.ev[1], EV[2]);
    assert_int_equal(scan.n_damaged, 1);
    assert_int_equal(scan.first_damaged, rec2);
    assert_false(scan.torn);
    assert_int_equal(scan.end, (int64_t)len);
    ehr_journal_free(&j);
}

static void test_rotate_and_lock(void **state)
{
    struct fixture *f = *state;
    write_three(f->path, 3);
    ehr_journal *j = NULL, *other = NULL;
    ehr_err err;
    assert_int_equal(ehr_journal_open(f->path, 1, false, &j, &err), EHR_OK);
    /* one owner at a time; readers may look */
    assert_int_equal(ehr_journal_open(f->path, 1, false, &other, &err), EHR_EBUSY);
    assert_int_equal(ehr_journal_open(f->path, 1, true, &other, &err), EHR_OK);
    assert_int_equal(ehr_journal_append(other, 1, "{}", 2, &err), EHR_EINTERNAL);
    ehr_journal_free(&other);
    struct got g = {0};
    ehr_journal_scan scan;
    assert_int_equal(ehr_journal_read(j, ehr_journal_start(j), 0, 0, got_cb, &g, &scan, &err),
                     EHR_OK);
    /* keep the last two records in generation 4 */
    assert_int_equal(ehr_journal_rotate(j, 3, g.off[1], 0, &err), EHR_EINTERNAL);
    assert_int_equal(ehr_journal_rotate(j, 4, g.off[1], 0, &err), EHR_OK);
    assert_int_equal(ehr_journal_generation(j), 4);
    int64_t pg, po;
    ehr_journal_prev(j, &pg, &po);
    assert_int_equal(pg, 3);
    assert_int_equal(po, g.off[1]);
    assert_int_equal(ehr_journal_append(j, 5000, "{\"x\":1}", 7, &err), EHR_OK);
    struct got g2 = {0};
    assert_int_equal(ehr_journal_read(j, ehr_journal_start(j), 0, 0, got_cb, &g2, &scan, &err),
                     EHR_OK);
    assert_int_equal(g2.n, 3);
    assert_string_equal(g2.ev[0], EV[1]);
    assert_string_equal(g2.ev[1], EV[2]);
    assert_string_equal(g2.ev[2], "{\"x\":1}");
    assert_int_equal(g2.time[2], 5000);
    /* still locked after the swap; free unlocks */
    assert_int_equal(ehr_journal_open(f->path, 1, false, &other, &err), EHR_EBUSY);
    ehr_journal_free(&j);
    assert_int_equal(ehr_journal_open(f->path, 1, false, &other, &err), EHR_OK);
    assert_int_equal(ehr_journal_generation(other), 4);
    ehr_journal_free(&other);
    /* a file that is not a journal is left alone */
    char junk[200];
    snprintf(junk, sizeof junk, "%s/junk", f->dir);
    append_raw(junk, "hello\n");
    assert_int_equal(ehr_journal_open(junk, 1, false, &j, &err), EHR_EINVAL);
}

/* Audit records in the chain: how many, and the events in order. */
struct chain {
    size_t n;
    char ev[32][160];
};

static ehr_status chain_cb(void *p, int64_t seq, int64_t time, const char *hash, const char *event,
                           size_t len)
{
    (void)seq, (void)time, (void)hash;
    struct chain *c = p;
    if (c->n < 32)
        snprintf(c->ev[c->n], sizeof c->ev[0], "%.*s", (int)len, event);
    c->n++;
    return EHR_OK;
}

static void read_chain(ehr_repo *r, struct chain *c)
{
    ehr_store_conn *conn;
    ehr_err err;
    memset(c, 0, sizeof *c);
    assert_int_equal(ehr_repo_conn(r, &conn, &err), EHR_OK);
    ehr_store_audit_q q = {0};
    assert_int_equal(EHR_STORE_CALL(conn, audit_list, &q, chain_cb, c, &err), EHR_OK);
    int64_t n, bad;
    assert_int_equal(ehr_repo_audit_verify(r, &n, &bad, &err), EHR_OK);
}

static ehr_repo *open_repo(struct fixture *f)
{
    ehr_repo *r = NULL;
    ehr_err err = {{0}};
    char target[160];
    snprintf(target, sizeof target, "sqlite:%s", f->db);
    ehr_status st = ehr_repo_open(target, &r, &err);
    if (st)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, EHR_OK);
    return r;
}

static void test_replay_once(void **state)
{
    struct fixture *f = *state;
    ehr_repo *r = open_repo(f); /* the database, with no journal yet */
    ehr_repo_free(&r);
    write_three(f->path, 1);
    size_t len;
    char *saved = slurp(f->path, &len);
    /* as if a run had applied the first record and died before the rest:
       the mark says so (the record itself is not needed for this test) */
    ehr_store *s;
    ehr_store_conn *c;
    ehr_err err;
    assert_int_equal(ehr_store_open(f->db, &s, &err), EHR_OK);
    assert_int_equal(ehr_store_connect(s, &c, &err), EHR_OK);
    int64_t second = (int64_t)(strstr(saved, "\n") - saved) + 1;
    second += (int64_t)(strstr(saved + second, "\n") - (saved + second)) + 1;
    assert_int_equal(EHR_STORE_CALL(c, begin, true, &err), EHR_OK);
    assert_int_equal(EHR_STORE_CALL(c, audit_applied_set, 1, second, &err), EHR_OK);
    assert_int_equal(EHR_STORE_CALL(c, commit, &err), EHR_OK);
    ehr_store_disconnect(&c);
    ehr_store_close(&s);

    /* opening applies the records past the mark, once */
    struct chain ch;
    r = open_repo(f);
    read_chain(r, &ch);
    assert_int_equal(ch.n, 2);
    assert_string_equal(ch.ev[0], EV[1]);
    assert_string_equal(ch.ev[1], EV[2]);
    ehr_repo_free(&r);
    r = open_repo(f);
    read_chain(r, &ch);
    assert_int_equal(ch.n, 2);
    ehr_repo_free(&r);
    /* the old file put back (same generation): nothing new */
    FILE *fp = fopen(f->path, "wb");
    fwrite(saved, 1, len, fp);
    fclose(fp);
    r = open_repo(f);
    read_chain(r, &ch);
    assert_int_equal(ch.n, 2);
    ehr_repo_free(&r);
    free(saved);
}

/* more records than one chunk of work (128): all are applied at the start */
static void test_replay_many(void **state)
{
    struct fixture *f = *state;
    ehr_repo *r = open_repo(f);
    ehr_repo_free(&r);
    ehr_journal *j = NULL;
    ehr_err err;
    assert_int_equal(ehr_journal_open(f->path, 1, false, &j, &err), EHR_OK);
    char ev[64];
    for (int i = 0; i < 300; i++) {
        snprintf(ev, sizeof ev, "{\"action\":\"read\",\"id\":\"p%d\"}", i);
        assert_int_equal(ehr_journal_append(j, 1000 + i, ev, strlen(ev), &err), EHR_OK);
    }
    ehr_journal_free(&j);
    r = open_repo(f);
    ehr_store_conn *conn;
    assert_int_equal(ehr_repo_conn(r, &conn, &err), EHR_OK);
    struct chain ch = {0};
    ehr_store_audit_q q = {.from_seq = 290};
    assert_int_equal(EHR_STORE_CALL(conn, audit_list, &q, chain_cb, &ch, &err), EHR_OK);
    assert_int_equal(ch.n, 11); /* seq 290 .. 300 */
    assert_string_equal(ch.ev[10], "{\"action\":\"read\",\"id\":\"p299\"}");
    read_chain(r, &ch);
    assert_int_equal(ch.n, 300);
    assert_string_equal(ch.ev[0], "{\"action\":\"read\",\"id\":\"p0\"}");
    ehr_repo_free(&r);
}

static void test_repo_journal(void **state)
{
    struct fixture *f = *state;
    ehr_repo *r = open_repo(f);
    ehr_err err;
    /* a long period: only a sync (or closing) applies */
    assert_int_equal(ehr_repo_audit_journal(r, 60000, &err), EHR_OK);
    ehr_repo_ctx who = {.user = "unit", .client = "test"};
    const char *text = "{\"resourceType\":\"Patient\",\"gender\":\"other\"}";
    json_t *p = ehr_json_parse(text, strlen(text), NULL);
    ehr_repo_out out = {0};
    ehr_fhir_issues issues = {0};
    assert_int_equal(ehr_repo_create(r, &who, "Patient", p, NULL, &out, &issues, &err), EHR_OK);
    json_decref(p);
    ehr_fhir_issues_free(&issues);
    char id[72];
    snprintf(id, sizeof id, "%s", out.id);
    ehr_repo_out_free(&out);
    for (int i = 0; i < 3; i++) {
        ehr_repo_out o = {0};
        assert_int_equal(ehr_repo_read(r, &who, "Patient", id, 0, &o, &err), EHR_OK);
        ehr_repo_out_free(&o);
    }
    /* the write's record is in its transaction; the reads' in the journal */
    ehr_store_conn *conn;
    assert_int_equal(ehr_repo_conn(r, &conn, &err), EHR_OK);
    struct chain ch = {0};
    ehr_store_audit_q q = {0};
    assert_int_equal(EHR_STORE_CALL(conn, audit_list, &q, chain_cb, &ch, &err), EHR_OK);
    assert_int_equal(ch.n, 1);
    assert_non_null(strstr(ch.ev[0], "\"create\""));
    assert_int_equal(ehr_repo_audit_sync(r, &err), EHR_OK);
    read_chain(r, &ch);
    assert_int_equal(ch.n, 4);
    for (int i = 1; i < 4; i++) {
        assert_non_null(strstr(ch.ev[i], "\"action\":\"read\""));
        assert_non_null(strstr(ch.ev[i], id));
    }
    /* another process's view while this one owns the journal: it may apply
       the journal too, and nothing is applied twice */
    {
        ehr_repo_out o = {0};
        assert_int_equal(ehr_repo_read(r, &who, "Patient", id, 0, &o, &err), EHR_OK);
        ehr_repo_out_free(&o);
    }
    ehr_repo *other = open_repo(f);
    assert_int_equal(ehr_repo_audit_sync(other, &err), EHR_OK);
    read_chain(other, &ch);
    assert_int_equal(ch.n, 5);
    ehr_repo_free(&other);
    assert_int_equal(ehr_repo_audit_sync(r, &err), EHR_OK);
    read_chain(r, &ch);
    assert_int_equal(ch.n, 5);
    /* records left unapplied at close go in at the close */
    {
        ehr_repo_out o = {0};
        assert_int_equal(ehr_repo_read(r, &who, "Patient", id, 0, &o, &err), EHR_OK);
        ehr_repo_out_free(&o);
    }
    ehr_repo_free(&r);
    r = open_repo(f);
    read_chain(r, &ch);
    assert_int_equal(ch.n, 6);
    ehr_repo_free(&r);
}

static void test_damage_recorded(void **state)
{
    struct fixture *f = *state;
    ehr_repo *r = open_repo(f);
    ehr_repo_free(&r);
    write_three(f->path, 1);
    size_t len;
    char *text = slurp(f->path, &len);
    char *p = strstr(text, "\"bb\"");
    int fd = open(f->path, O_WRONLY);
    assert_int_equal(pwrite(fd, "X", 1, (p - text) + 1), 1);
    close(fd);
    free(text);
    append_raw(f->path, "deadbeef 9 1"); /* and a torn tail */
    r = open_repo(f);
    struct chain ch;
    read_chain(r, &ch);
    /* the good records, then the loss recorded in the chain itself */
    assert_int_equal(ch.n, 3);
    assert_string_equal(ch.ev[0], EV[0]);
    assert_string_equal(ch.ev[1], EV[2]);
    assert_non_null(strstr(ch.ev[2], "\"action\":\"audit-journal\""));
    assert_non_null(strstr(ch.ev[2], "\"outcome\":\"failed\""));
    ehr_repo_free(&r);
    /* the journal starts clean afterwards */
    ehr_journal *j = NULL;
    ehr_err err;
    assert_int_equal(ehr_journal_open(f->path, 1, true, &j, &err), EHR_OK);
    assert_int_equal(ehr_journal_end(j), ehr_journal_start(j));
    ehr_journal_free(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crc_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotate_and_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repo_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_recorded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

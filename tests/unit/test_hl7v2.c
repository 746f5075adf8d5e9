/*
 * Unit tests for src/hl7v2: parsing, escapes, limits, the canonical writer,
 * batches, ACKs, timestamps; and a round trip over every sample message in
 * ../shared/data/hl7v2 (skipped, with the reason printed, when absent).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four above first */
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl7v2/hl7v2.h"

static ehr_hl7_msg *parse(ehr_arena *a, const char *text)
{
    ehr_hl7_msg *m = NULL;
    ehr_hl7_error e;
    ehr_status st = ehr_hl7_parse(text, strlen(text), NULL, a, &m, &e);
    if (st)
        fprintf(stderr, "parse failed: %s\n", e.text);
    assert_int_equal(st, EHR_OK);
    return m;
}

static void test_structure(void **state)
{
    ehr_arena *a = ehr_arena_new();
    ehr_hl7_msg *m = parse(
        a, "\xEF\xBB\xBFMSH|^~\\&|LAB|FAC|EHR|HOSP|20240102030405||ORU^R01^ORU_R01|C1|P|2.5.1\r\n"
           "PID|1||123^^^HOSP^MR~456^^^SSA^SS||Doe^John^Q||19800102|M\n"
           "\n"
           "ZXY|a&b&c^d~e|\r"
           "OBX|1|NM|1234-5^Glucose^LN||5.6|mmol/L|3.9-5.5|H|||F\r");
    assert_int_equal(m->n_segs, 4);
    assert_int_equal(m->field_sep, '|');
    assert_int_equal(m->sub_sep, '&');
    const ehr_hl7_seg *msh = &m->segs[0];
    assert_string_equal(ehr_hl7_val(msh, 1, 1), "|");
    assert_string_equal(ehr_hl7_val(msh, 2, 1), "^~\\&");
    assert_string_equal(ehr_hl7_val(msh, 9, 2), "R01");
    assert_string_equal(ehr_hl7_val(msh, 10, 1), "C1");
    const ehr_hl7_seg *pid = ehr_hl7_seg_find(m, "PID", 1);
    assert_non_null(pid);
    assert_int_equal(ehr_hl7_nreps(pid, 3), 2);
    assert_string_equal(ehr_hl7_get(pid, 3, 2, 1, 1), "456");
    assert_string_equal(ehr_hl7_get(pid, 3, 2, 4, 1), "SSA");
    assert_string_equal(ehr_hl7_val(pid, 5, 2), "John");
    assert_string_equal(ehr_hl7_val(pid, 99, 1), "");
    const ehr_hl7_seg *z = ehr_hl7_seg_find(m, "ZXY", 1);
    assert_non_null(z);
    assert_string_equal(ehr_hl7_get(z, 1, 1, 1, 3), "c");
    assert_string_equal(ehr_hl7_get(z, 1, 2, 1, 1), "e");
    assert_int_equal(z->n_fields, 2); /* trailing empty field dropped */
    ehr_hl7_header h;
    ehr_hl7_header_get(m, &h);
    assert_string_equal(h.type, "ORU");
    assert_string_equal(h.structure, "ORU_R01");
    assert_string_equal(h.version, "2.5.1");
    ehr_arena_free(&a);
}

/* Escapes: input leaf as written -> decoded text (HL7 v2.5.1 2.7.4). */
static const struct {
    const char *in, *out;
} escapes[] = {
    {"a\\F\\b", "a|b"},
    {"\\S\\\\T\\\\R\\\\E\\", "^&~\\"},
    {"x\\.br\\y", "x\ny"},
    {"\\X41\\\\X4243\\", "ABC"},
    {"\\XC3A9\\", "\xC3\xA9"},
    {"\\H\\bold\\N\\", "\\H\\bold\\N\\"}, /* formatting kept */
    {"lone \\ escape", "lone \\ escape"},
    {"\\X0\\", "\\X0\\"},   /* odd hex: kept */
    {"\\X00\\", "\\X00\\"}, /* NUL: kept as written */
};

static void test_escapes(void **state)
{
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
        ehr_arena *a = ehr_arena_new();
        char text[256];
        snprintf(text, sizeof text, "MSH|^~\\&|A\rNTE|1||%s\r", escapes[i].in);
        ehr_hl7_msg *m = parse(a, text);
        const char *got = ehr_hl7_val(ehr_hl7_seg_find(m, "NTE", 1), 3, 1);
        if (strcmp(got, escapes[i].out))
            fail_msg("escape %zu: '%s' gave '%s', expected '%s'", i, escapes[i].in, got,
                     escapes[i].out);
        /* writing escapes it again; reading that gives the same text */
        ehr_buf b = EHR_BUF_INIT;
        assert_int_equal(ehr_hl7_write(m, &b), EHR_OK);
        ehr_hl7_msg *m2 = parse(a, b.data);
        assert_string_equal(ehr_hl7_val(ehr_hl7_seg_find(m2, "NTE", 1), 3, 1), escapes[i].out);
        ehr_buf_free(&b);
        ehr_arena_free(&a);
    }
}

static void test_other_separators(void **state)
{
    ehr_arena *a = ehr_arena_new();
    ehr_hl7_msg *m = parse(a, "MSH#*!/%#A#B\rPID#1##9*x!8*y#a/F/b/S/c\r");
    const ehr_hl7_seg *pid = ehr_hl7_seg_find(m, "PID", 1);
    assert_string_equal(ehr_hl7_get(pid, 3, 2, 2, 1), "y");
    assert_string_equal(ehr_hl7_val(pid, 4, 1), "a#b*c");
    ehr_buf b = EHR_BUF_INIT;
    assert_int_equal(ehr_hl7_write(m, &b), EHR_OK);
    assert_string_equal(b.data, "MSH#*!/%#A#B\rPID#1##9*x!8*y#a/F/b/S/c\r");
    ehr_buf_free(&b);
    ehr_arena_free(&a);
}

/* Malformed input: status, ERR code, and a pattern of the message. */
static const struct {
    const char *in;
    ehr_status st;
    int code;
    const char *text;
} bad[] = {
    {"PID|1\r", EHR_EINVAL, 100, "does not begin with an MSH"},
    {"MSH|^~\\|A\r", EHR_EINVAL, 102, "four or five encoding characters"},
    {"MSH|^~^&|A\r", EHR_EINVAL, 102, "used twice"},
    {"MSHA^~\\&|A\r", EHR_EINVAL, 102, "cannot be a separator"},
    {"MSH|^~\\&|A\rP-D|1\r", EHR_EINVAL, 100, "invalid segment id"},
    {"MSH|^~\\&|A\rPIDX|1\r", EHR_EINVAL, 100, "three-character segment id"},
    {"MSH|^~\\&|A\rMSH|^~\\&|B\r", EHR_EINVAL, 100, "second MSH"},
};

static void test_bad(void **state)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ehr_arena *a = ehr_arena_new();
        ehr_hl7_msg *m;
        ehr_hl7_error e;
        ehr_status st = ehr_hl7_parse(bad[i].in, strlen(bad[i].in), NULL, a, &m, &e);
        if (st != bad[i].st || e.code != bad[i].code || !strstr(e.text, bad[i].text))
            fail_msg("case %zu: status %d code %d '%s'", i, st, e.code, e.text);
        ehr_arena_free(&a);
    }
}

static void test_limits(void **state)
{
    ehr_hl7_limits l;
    ehr_hl7_limits_default(&l);
    l.max_segments = 3;
    l.max_field = 10;
    l.max_parts = 4;
    l.max_message = 200;
    ehr_arena *a = ehr_arena_new();
    ehr_hl7_msg *m;
    ehr_hl7_error e;
    const char *segs = "MSH|^~\\&|A\rPID|1\rPV1|1\rOBX|1\r";
    assert_int_equal(ehr_hl7_parse(segs, strlen(segs), &l, a, &m, &e), EHR_ELIMIT);
    assert_non_null(strstr(e.text, "4 segments"));
    const char *field = "MSH|^~\\&|A\rPID|1||12345678901\r";
    assert_int_equal(ehr_hl7_parse(field, strlen(field), &l, a, &m, &e), EHR_ELIMIT);
    assert_string_equal(e.seg, "PID");
    assert_int_equal(e.field, 3);
    assert_int_equal(e.seg_seq, 2);
    const char *reps = "MSH|^~\\&|A\rPID|1||1~2~3~4~5\r";
    assert_int_equal(ehr_hl7_parse(reps, strlen(reps), &l, a, &m, &e), EHR_ELIMIT);
    assert_non_null(strstr(e.text, "repetitions"));
    char big[300];
    memset(big, 'x', sizeof big);
    memcpy(big, "MSH|^~\\&|", 9);
    assert_int_equal(ehr_hl7_parse(big, sizeof big, &l, a, &m, &e), EHR_ELIMIT);
    ehr_arena_free(&a);
}

struct split_ctx {
    int n;
    int lines[8];
};

static ehr_status split_cb(void *p, const char *data, size_t len, int line)
{
    struct split_ctx *c = p;
    assert_true(len > 3 && !memcmp(data, "MSH", 3));
    if (c->n < 8)
        c->lines[c->n] = line;
    c->n++;
    return EHR_OK;
}

struct len_ctx {
    int n;
    size_t last_len;
};

static ehr_status len_cb(void *p, const char *data, size_t len, int line)
{
    struct len_ctx *c = p;
    c->n++;
    c->last_len = len;
    return EHR_OK;
}

static void test_split(void **state)
{
    const char *f =
        "FHS|^~\\&\rBHS|^~\\&\rMSH|^~\\&|A\rPID|1\rMSH|^~\\&|B\r\nPID|2\r\nBTS|2\rFTS|1\r";
    struct split_ctx c = {0};
    ehr_hl7_error e;
    assert_int_equal(ehr_hl7_split(f, strlen(f), split_cb, &c, &e), EHR_OK);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.lines[0], 3);
    assert_int_equal(c.lines[1], 5);
    /* the last segment without a terminator is part of the last message */
    const char *noend = "MSH|^~\\&|A\rPID|1\rMSH|^~\\&|B\rPID|2\rOBX|1";
    struct len_ctx lc = {0};
    assert_int_equal(ehr_hl7_split(noend, strlen(noend), len_cb, &lc, &e), EHR_OK);
    assert_int_equal(lc.n, 2);
    assert_int_equal(lc.last_len, strlen("MSH|^~\\&|B\rPID|2\rOBX|1"));
    const char *orphan = "BHS|^~\\&\rPID|1\rBTS|0\r";
    memset(&c, 0, sizeof c);
    assert_int_equal(ehr_hl7_split(orphan, strlen(orphan), split_cb, &c, &e), EHR_EINVAL);
    assert_non_null(strstr(e.text, "line 2"));
    const char *nested = "BHS|^~\\&\rMSH|^~\\&|A\rBHS|^~\\&\r";
    assert_int_equal(ehr_hl7_split(nested, strlen(nested), split_cb, &c, &e), EHR_EINVAL);
    assert_non_null(strstr(e.text, "BHS inside"));
}

/* Split fields of one segment of a written message, for checking ACKs. */
static const char *seg_line(const char *msg, const char *name, char *out, size_t cap)
{
    const char *p = msg;
    while (p && *p) {
        if (!strncmp(p, name, 3)) {
            size_t n = strcspn(p, "\r");
            snprintf(out, cap, "%.*s", (int)n, p);
            return out;
        }
        p = strchr(p, '\r');
        if (p)
            p++;
    }
    return NULL;
}

static void test_ack(void **state)
{
    ehr_arena *a = ehr_arena_new();
    ehr_hl7_msg *m = parse(a, "MSH|^~\\&|LAB|LABFAC|EHR|HOSP|20240102||ORU^R01|MSG00001|P|2.5.1\r");
    ehr_buf b = EHR_BUF_INIT;
    assert_int_equal(ehr_hl7_ack(m, EHR_HL7_AA, NULL, "EHR", "HOSP", "A1", &b), EHR_OK);
    char line[512];
    assert_non_null(seg_line(b.data, "MSA", line, sizeof line));
    assert_string_equal(line, "MSA|AA|MSG00001");
    assert_null(seg_line(b.data, "ERR", line, sizeof line));
    /* the ACK parses, is addressed back to the sender, and names the event */
    ehr_hl7_msg *ack = parse(a, b.data);
    assert_string_equal(ehr_hl7_val(&ack->segs[0], 5, 1), "LAB");
    assert_string_equal(ehr_hl7_val(&ack->segs[0], 6, 1), "LABFAC");
    assert_string_equal(ehr_hl7_val(&ack->segs[0], 9, 1), "ACK");
    assert_string_equal(ehr_hl7_val(&ack->segs[0], 9, 2), "R01");
    assert_string_equal(ehr_hl7_val(&ack->segs[0], 10, 1), "A1");
    ehr_buf_reset(&b);
    ehr_hl7_error e;
    ehr_hl7_fail(&e, EHR_EINVAL, 101, "PID", 3, 5, "PID-5 (patient name) is required");
    assert_int_equal(ehr_hl7_ack(m, EHR_HL7_AE, &e, "EHR", "HOSP", "A2", &b), EHR_OK);
    ack = parse(a, b.data);
    const ehr_hl7_seg *err = ehr_hl7_seg_find(ack, "ERR", 1);
    assert_non_null(err);
    assert_string_equal(ehr_hl7_val(err, 2, 1), "PID");
    assert_string_equal(ehr_hl7_val(err, 2, 2), "3");
    assert_string_equal(ehr_hl7_val(err, 2, 3), "5");
    assert_string_equal(ehr_hl7_val(err, 3, 1), "101");
    assert_string_equal(ehr_hl7_val(err, 3, 3), "HL70357");
    assert_string_equal(ehr_hl7_val(err, 4, 1), "E");
    assert_string_equal(ehr_hl7_val(err, 8, 1), "PID-5 (patient name) is required");
    assert_string_equal(ehr_hl7_val(ehr_hl7_seg_find(ack, "MSA", 1), 1, 1), "AE");
    /* version 2.3: ERR-1 (ELD) too */
    m = parse(a, "MSH|^~\\&|LAB|LABFAC|EHR|HOSP|20240102||ADT^A01|X9|P|2.3\r");
    ehr_buf_reset(&b);
    assert_int_equal(ehr_hl7_ack(m, EHR_HL7_AR, &e, "EHR", "HOSP", "A3", &b), EHR_OK);
    ack = parse(a, b.data);
    err = ehr_hl7_seg_find(ack, "ERR", 1);
    assert_string_equal(ehr_hl7_val(err, 1, 1), "PID");
    assert_string_equal(ehr_hl7_get(err, 1, 1, 4, 1), "101");
    ehr_buf_free(&b);
    ehr_arena_free(&a);
}

static void test_ack_modes(void **state)
{
    ehr_arena *a = ehr_arena_new();
    ehr_hl7_msg *orig = parse(a, "MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\r");
    ehr_hl7_msg *enh = parse(a, "MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5|||AL|ER\r");
    assert_false(ehr_hl7_enhanced(orig));
    assert_true(ehr_hl7_enhanced(enh));
    assert_true(ehr_hl7_ack_wanted("AL", true));
    assert_false(ehr_hl7_ack_wanted("NE", false));
    assert_true(ehr_hl7_ack_wanted("ER", false));
    assert_false(ehr_hl7_ack_wanted("ER", true));
    assert_true(ehr_hl7_ack_wanted("SU", true));
    assert_false(ehr_hl7_ack_wanted("SU", false));
    ehr_arena_free(&a);
}

static const struct {
    const char *in, *out;
    bool date_only;
} dtms[] = {
    {"2024", "2024", false},
    {"202401", "2024-01", false},
    {"20240102", "2024-01-02", false},
    {"202401020304", "2024-01-02T03:04:00Z", false},
    {"20240102030405", "2024-01-02T03:04:05Z", false},
    {"20240102030405.123-0500", "2024-01-02T03:04:05.123-05:00", false},
    {"20240102030405+0100", "2024-01-02", true},
    {"2024010", NULL, false},
    {"20241301", NULL, false},
    {"2024x", NULL, false},
};

static void test_dtm(void **state)
{
    for (size_t i = 0; i < sizeof dtms / sizeof dtms[0]; i++) {
        char out[64];
        bool ok = ehr_hl7_dtm_to_fhir(dtms[i].in, dtms[i].date_only, out, sizeof out);
        if (!dtms[i].out) {
            assert_false(ok);
            continue;
        }
        assert_true(ok);
        assert_string_equal(out, dtms[i].out);
    }
}

/* -- every sample message: parses; writing then parsing gives the same tree -- */

static bool same_tree(const ehr_hl7_msg *a, const ehr_hl7_msg *b)
{
    if (a->n_segs != b->n_segs)
        return false;
    for (size_t i = 0; i < a->n_segs; i++) {
        const ehr_hl7_seg *x = &a->segs[i], *y = &b->segs[i];
        if (strcmp(x->name, y->name) || x->n_fields != y->n_fields)
            return false;
        for (size_t f = 1; f < x->n_fields; f++) {
            if (x->fields[f].n != y->fields[f].n)
                return false;
            for (size_t r = 0; r < x->fields[f].n; r++) {
                const struct ehr_hl7_rep *rx = &x->fields[f].reps[r], *ry = &y->fields[f].reps[r];
                if (rx->n != ry->n)
                    return false;
                for (size_t c = 0; c < rx->n; c++) {
                    if (rx->comps[c].n != ry->comps[c].n)
                        return false;
                    for (size_t s = 0; s < rx->comps[c].n; s++)
                        if (strcmp(rx->comps[c].subs[s], ry->comps[c].subs[s]))
                            return false;
                }
            }
        }
    }
    return true;
}

/* Segments in the raw text, counted independently of the parser. */
static size_t count_segments(const char *d, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && d[j] != '\r' && d[j] != '\n')
            j++;
        if (j > i)
            n++;
        i = j + 1;
    }
    return n;
}

struct rt_ctx {
    const char *file;
    int messages;
    size_t segments;
};

static ehr_status roundtrip(void *p, const char *data, size_t len, int line)
{
    struct rt_ctx *c = p;
    ehr_arena *a = ehr_arena_new();
    ehr_hl7_msg *m = NULL, *m2 = NULL;
    ehr_hl7_error e;
    ehr_status st = ehr_hl7_parse(data, len, NULL, a, &m, &e);
    if (st)
        fail_msg("%s line %d: %s", c->file, line, e.text);
    size_t expect = count_segments(data, len);
    if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3))
        expect = count_segments(data + 3, len - 3);
    if (m->n_segs != expect)
        fail_msg("%s: %zu segments parsed, %zu in the text", c->file, m->n_segs, expect);
    ehr_buf b = EHR_BUF_INIT;
    assert_int_equal(ehr_hl7_write(m, &b), EHR_OK);
    assert_null(strchr(b.data, '\n')); /* canonical: CR only */
    st = ehr_hl7_parse(b.data, b.len, NULL, a, &m2, &e);
    if (st)
        fail_msg("%s: the written form does not parse: %s", c->file, e.text);
    if (!same_tree(m, m2))
        fail_msg("%s: the written form parses to a different structure", c->file);
    /* and writing is stable */
    ehr_buf b2 = EHR_BUF_INIT;
    assert_int_equal(ehr_hl7_write(m2, &b2), EHR_OK);
    assert_string_equal(b.data, b2.data);
    ehr_buf_free(&b);
    ehr_buf_free(&b2);
    c->messages++;
    c->segments += m->n_segs;
    ehr_arena_free(&a);
    return EHR_OK;
}

/* Segments of a whole file other than the batch envelope, counted here. */
static size_t file_segments(const char *d, size_t len)
{
    if (len >= 3 && !memcmp(d, "\xEF\xBB\xBF", 3)) {
        d += 3;
        len -= 3;
    }
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && d[j] != '\r' && d[j] != '\n')
            j++;
        if (j > i && !(j - i >= 3 && (!memcmp(d + i, "FHS", 3) || !memcmp(d + i, "BHS", 3) ||
                                      !memcmp(d + i, "BTS", 3) || !memcmp(d + i, "FTS", 3))))
            n++;
        i = j + 1;
    }
    return n;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = malloc((size_t)n + 1);
    if (d && fread(d, 1, (size_t)n, f) != (size_t)n) {
        free(d);
        d = NULL;
    }
    fclose(f);
    if (d)
        d[n] = '\0';
    *len = (size_t)n;
    return d;
}

static int run_dir(const char *dir, int *files, int *bad_ok)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *de;
    int messages = 0;
    while ((de = readdir(d))) {
        if (!strstr(de->d_name, ".hl7"))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len;
        char *data = slurp(path, &len);
        assert_non_null(data);
        struct rt_ctx c = {.file = path};
        ehr_hl7_error e;
        ehr_status st = ehr_hl7_split(data, len, roundtrip, &c, &e);
        /* the edge cases named sample_bad_* are malformed batches: rejected
           with the line named */
        if (strstr(de->d_name, "_bad_")) {
            if (st != EHR_EINVAL || !strstr(e.text, "line "))
                fail_msg("%s: a malformed batch was accepted", path);
            (*bad_ok)++;
        } else {
            if (st)
                fail_msg("%s: %s", path, e.text);
            if (c.messages < 1)
                fail_msg("%s: no message found", path);
            if (c.segments != file_segments(data, len))
                fail_msg("%s: %zu segments in the messages, %zu in the file", path, c.segments,
                         file_segments(data, len));
        }
        messages += c.messages;
        (*files)++;
        free(data);
    }
    closedir(d);
    return messages;
}

static void test_samples(void **state)
{
    const char *dirs[] = {"../shared/data/hl7v2/converter-samples/messages/Hl7v2",
                          "../shared/data/hl7v2/edge-cases"};
    for (size_t i = 0; i < 2; i++) {
        int files = 0, bad_ok = 0;
        int n = run_dir(dirs[i], &files, &bad_ok);
        if (n < 0) {
            printf("SKIP: %s is absent (see ../shared/data/README.md)\n", dirs[i]);
            continue;
        }
        printf("%s: %d files, %d messages round-tripped, %d malformed batches rejected\n", dirs[i],
               files, n, bad_ok);
        assert_true(files > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_other_separators),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_ack),
        cmocka_unit_test(test_ack_modes),
        cmocka_unit_test(test_dtm),
        cmocka_unit_test(test_samples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

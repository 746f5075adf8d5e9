/*
 * parse.c - HL7 v2 ER7 ("pipe and hat") parsing, escaping and writing
 * (HL7 v2.5.1 chapter 2: 2.5 message construction, 2.7 encoding rules,
 * 2.7.4 escape sequences, 2.10.3 batch protocol).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hl7v2/hl7v2.h"

void ehr_hl7_limits_default(ehr_hl7_limits *l)
{
    l->max_message = EHR_HL7_MAX_MESSAGE;
    l->max_segments = EHR_HL7_MAX_SEGMENTS;
    l->max_field = EHR_HL7_MAX_FIELD;
    l->max_parts = EHR_HL7_MAX_PARTS;
}

ehr_status ehr_hl7_fail(ehr_hl7_error *e, ehr_status st, int code, const char *seg, int seg_seq,
                        int field, const char *fmt, ...)
{
    if (!e)
        return st;
    memset(e, 0, sizeof *e);
    snprintf(e->seg, sizeof e->seg, "%s", seg ? seg : "");
    e->seg_seq = seg_seq;
    e->field = field;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
    return st;
}

struct parser {
    const ehr_hl7_msg *m;
    const ehr_hl7_limits *lim;
    ehr_arena *a;
    ehr_hl7_error *e;
    const char *seg;
    int seg_seq, field;
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode the escape sequences of one leaf (2.7.4) into arena text. */
static char *unescape(struct parser *p, const char *s, size_t len)
{
    const ehr_hl7_msg *m = p->m;
    if (!memchr(s, m->esc, len))
        return ehr_arena_strndup(p->a, s, len);
    char *out = ehr_arena_alloc(p->a, len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != m->esc) {
            out[o++] = s[i];
            continue;
        }
        const char *end = memchr(s + i + 1, m->esc, len - i - 1);
        if (!end) { /* a lone escape character: taken as text */
            out[o++] = s[i];
            continue;
        }
        size_t n = (size_t)(end - (s + i + 1));
        const char *body = s + i + 1;
        char c = 0;
        if (n == 1) {
            if (*body == 'F')
                c = m->field_sep;
            else if (*body == 'S')
                c = m->comp_sep;
            else if (*body == 'T')
                c = m->sub_sep;
            else if (*body == 'R')
                c = m->rep_sep;
            else if (*body == 'E')
                c = m->esc;
            else if (*body == 'P' && m->trunc)
                c = m->trunc;
        } else if (n == 3 && !memcmp(body, ".br", 3)) {
            c = '\n';
        } else if (n >= 3 && body[0] == 'X' && (n - 1) % 2 == 0) {
            /* \Xhhhh..\: bytes in hexadecimal; NUL bytes are not text */
            bool ok = true;
            for (size_t k = 1; k < n; k += 2) {
                int h = hexval(body[k]), l = hexval(body[k + 1]);
                if (h < 0 || l < 0 || (h == 0 && l == 0))
                    ok = false;
            }
            if (ok) {
                for (size_t k = 1; k < n; k += 2)
                    out[o++] = (char)(hexval(body[k]) * 16 + hexval(body[k + 1]));
                i += n + 1;
                continue;
            }
        }
        if (c) {
            out[o++] = c;
            i += n + 1;
            continue;
        }
        /* formatting and character-set escapes (\H\ \N\ \.sp\ \C..\ \M..\ \Z..\)
           are kept as written: the writer gives them back unchanged */
        memcpy(out + o, s + i, n + 2);
        o += n + 2;
        i += n + 1;
    }
    out[o] = '\0';
    return out;
}

/* Split [s, s+len) at sep into at most lim->max_parts pieces. */
static ehr_status split(struct parser *p, const char *s, size_t len, char sep, size_t *n_out,
                        const char ***starts, size_t **lens, const char *what)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        if (s[i] == sep)
            n++;
    if (n > p->lim->max_parts)
        return ehr_hl7_fail(p->e, EHR_ELIMIT, 102, p->seg, p->seg_seq, p->field,
                            "%s-%d has %zu %s, more than the limit of %zu", p->seg, p->field, n,
                            what, p->lim->max_parts);
    *starts = ehr_arena_alloc(p->a, n * sizeof **starts);
    *lens = ehr_arena_alloc(p->a, n * sizeof **lens);
    if (!*starts || !*lens)
        return EHR_ENOMEM;
    size_t k = 0, from = 0;
    for (size_t i = 0; i <= len; i++)
        if (i == len || s[i] == sep) {
            (*starts)[k] = s + from;
            (*lens)[k] = i - from;
            k++;
            from = i + 1;
        }
    *n_out = n;
    return EHR_OK;
}

static bool comp_empty(const struct ehr_hl7_comp *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->subs[i][0])
            return false;
    return true;
}

static bool rep_empty(const struct ehr_hl7_rep *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (!comp_empty(&r->comps[i]))
            return false;
    return true;
}

static ehr_status parse_comp(struct parser *p, const char *s, size_t len, struct ehr_hl7_comp *c)
{
    const char **st;
    size_t *ln, n;
    ehr_status rc = split(p, s, len, p->m->sub_sep, &n, &st, &ln, "sub-components");
    if (rc)
        return rc;
    while (n > 1 && ln[n - 1] == 0) /* trailing empty parts carry nothing */
        n--;
    c->n = n;
    c->subs = ehr_arena_alloc(p->a, n * sizeof *c->subs);
    if (!c->subs)
        return EHR_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(c->subs[i] = unescape(p, st[i], ln[i])))
            return EHR_ENOMEM;
    return EHR_OK;
}

static ehr_status parse_rep(struct parser *p, const char *s, size_t len, struct ehr_hl7_rep *r)
{
    const char **st;
    size_t *ln, n;
    ehr_status rc = split(p, s, len, p->m->comp_sep, &n, &st, &ln, "components");
    if (rc)
        return rc;
    r->comps = ehr_arena_alloc(p->a, n * sizeof *r->comps);
    if (!r->comps)
        return EHR_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if ((rc = parse_comp(p, st[i], ln[i], &r->comps[i])))
            return rc;
    while (n > 1 && comp_empty(&r->comps[n - 1]))
        n--;
    r->n = n;
    return EHR_OK;
}

static ehr_status parse_field(struct parser *p, const char *s, size_t len, struct ehr_hl7_field *f)
{
    if (len > p->lim->max_field)
        return ehr_hl7_fail(p->e, EHR_ELIMIT, 102, p->seg, p->seg_seq, p->field,
                            "%s-%d is %zu bytes long, more than the limit of %zu", p->seg, p->field,
                            len, p->lim->max_field);
    f->n = 0;
    f->reps = NULL;
    if (len == 0)
        return EHR_OK;
    const char **st;
    size_t *ln, n;
    ehr_status rc = split(p, s, len, p->m->rep_sep, &n, &st, &ln, "repetitions");
    if (rc)
        return rc;
    f->reps = ehr_arena_alloc(p->a, n * sizeof *f->reps);
    if (!f->reps)
        return EHR_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if ((rc = parse_rep(p, st[i], ln[i], &f->reps[i])))
            return rc;
    while (n > 0 && rep_empty(&f->reps[n - 1]))
        n--;
    f->n = n;
    return EHR_OK;
}

static bool is_header(const char *name)
{
    return !strcmp(name, "MSH") || !strcmp(name, "FHS") || !strcmp(name, "BHS");
}

static ehr_status leaf_field(struct parser *p, struct ehr_hl7_field *f, const char *s, size_t len)
{
    f->n = 1;
    f->reps = ehr_arena_calloc(p->a, 1, sizeof *f->reps);
    if (!f->reps)
        return EHR_ENOMEM;
    f->reps->n = 1;
    f->reps->comps = ehr_arena_calloc(p->a, 1, sizeof *f->reps->comps);
    if (!f->reps->comps)
        return EHR_ENOMEM;
    f->reps->comps->n = 1;
    f->reps->comps->subs = ehr_arena_alloc(p->a, sizeof(char *));
    if (!f->reps->comps->subs || !(f->reps->comps->subs[0] = ehr_arena_strndup(p->a, s, len)))
        return EHR_ENOMEM;
    return EHR_OK;
}

static ehr_status parse_segment(struct parser *p, const char *s, size_t len, ehr_hl7_seg *seg)
{
    const ehr_hl7_msg *m = p->m;
    if (len < 3 || (len > 3 && s[3] != m->field_sep))
        return ehr_hl7_fail(p->e, EHR_EINVAL, 100, "", p->seg_seq, 0,
                            "segment %d does not begin with a three-character segment id "
                            "followed by the field separator",
                            p->seg_seq);
    for (int i = 0; i < 3; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return ehr_hl7_fail(p->e, EHR_EINVAL, 100, "", p->seg_seq, 0,
                                "segment %d has an invalid segment id (letters and digits only)",
                                p->seg_seq);
    }
    memcpy(seg->name, s, 3);
    seg->name[3] = '\0';
    p->seg = seg->name;
    const char *rest = s + 3, *end = s + len;
    size_t first = 1;
    bool header = is_header(seg->name);
    /* count fields */
    size_t n = 1;
    for (const char *q = rest; q < end; q++)
        if (*q == m->field_sep)
            n++;
    if (n > p->lim->max_parts + 3)
        return ehr_hl7_fail(p->e, EHR_ELIMIT, 102, seg->name, p->seg_seq, 0,
                            "segment %s has %zu fields, more than the limit of %zu", seg->name,
                            n - 1, p->lim->max_parts);
    seg->fields = ehr_arena_calloc(p->a, n + 1, sizeof *seg->fields);
    if (!seg->fields)
        return EHR_ENOMEM;
    ehr_status rc;
    if (header) {
        /* MSH-1 is the separator itself, MSH-2 the encoding characters (2.14.9.1-2) */
        if ((rc = leaf_field(p, &seg->fields[1], &m->field_sep, 1)))
            return rc;
        const char *enc = rest + (rest < end ? 1 : 0);
        const char *enc_end = enc;
        while (enc_end < end && *enc_end != m->field_sep)
            enc_end++;
        if ((rc = leaf_field(p, &seg->fields[2], enc, (size_t)(enc_end - enc))))
            return rc;
        first = 3;
        rest = enc_end;
        n -= 1;
    }
    /* rest points at the separator before field `first` (or at end) */
    size_t k = first;
    while (rest < end) {
        const char *f = rest + 1, *fe = f;
        while (fe < end && *fe != m->field_sep)
            fe++;
        p->field = (int)k;
        if ((rc = parse_field(p, f, (size_t)(fe - f), &seg->fields[k])))
            return rc;
        k++;
        rest = fe;
    }
    while (k > first && seg->fields[k - 1].n == 0)
        k--;
    seg->n_fields = k;
    p->field = 0;
    return EHR_OK;
}

ehr_status ehr_hl7_parse(const char *data, size_t len, const ehr_hl7_limits *limits,
                         ehr_arena *arena, ehr_hl7_msg **out, ehr_hl7_error *e)
{
    ehr_hl7_limits defl;
    if (!limits) {
        ehr_hl7_limits_default(&defl);
        limits = &defl;
    }
    *out = NULL;
    if (len > limits->max_message)
        return ehr_hl7_fail(e, EHR_ELIMIT, 207, "", 0, 0,
                            "the message is %zu bytes long, more than the limit of %zu", len,
                            limits->max_message);
    if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3)) {
        data += 3;
        len -= 3;
    }
    while (len > 0 && (data[0] == '\r' || data[0] == '\n')) {
        data++;
        len--;
    }
    if (len < 8 || memcmp(data, "MSH", 3))
        return ehr_hl7_fail(e, EHR_EINVAL, 100, "MSH", 1, 0,
                            "the message does not begin with an MSH segment");
    if (memchr(data, '\0', len))
        return ehr_hl7_fail(e, EHR_EINVAL, 102, "", 0, 0, "the message contains a NUL byte");
    ehr_hl7_msg *m = ehr_arena_calloc(arena, 1, sizeof *m);
    if (!m)
        return EHR_ENOMEM;
    /* MSH-1 and MSH-2: field separator, then component, repetition, escape,
       sub-component and (v2.7+) truncation characters */
    m->field_sep = data[3];
    const char *enc = data + 4;
    size_t ne = 0;
    while (4 + ne < len && enc[ne] != m->field_sep && enc[ne] != '\r' && enc[ne] != '\n')
        ne++;
    if (ne < 4 || ne > 5)
        return ehr_hl7_fail(e, EHR_EINVAL, 102, "MSH", 1, 2,
                            "MSH-2 must hold four or five encoding characters, not %zu", ne);
    m->comp_sep = enc[0];
    m->rep_sep = enc[1];
    m->esc = enc[2];
    m->sub_sep = enc[3];
    m->trunc = ne == 5 ? enc[4] : 0;
    char seps[6] = {m->field_sep, m->comp_sep, m->rep_sep, m->esc, m->sub_sep, m->trunc};
    for (size_t i = 0; i < 5 + (ne == 5); i++) {
        unsigned char c = (unsigned char)seps[i];
        if (c < 0x21 || c > 0x7e || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
            (c >= 'a' && c <= 'z'))
            return ehr_hl7_fail(e, EHR_EINVAL, 102, "MSH", 1, i == 0 ? 1 : 2,
                                "MSH-%d: '%c' cannot be a separator (printable punctuation only)",
                                i == 0 ? 1 : 2, c >= 0x21 && c <= 0x7e ? c : '?');
        for (size_t j = 0; j < i; j++)
            if (seps[j] == seps[i])
                return ehr_hl7_fail(e, EHR_EINVAL, 102, "MSH", 1, 2,
                                    "MSH-1/MSH-2: the separator '%c' is used twice", seps[i]);
    }
    /* count segments */
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && data[j] != '\r' && data[j] != '\n')
            j++;
        if (j > i)
            n++;
        i = j + 1;
    }
    if (n > limits->max_segments)
        return ehr_hl7_fail(e, EHR_ELIMIT, 207, "", 0, 0,
                            "the message has %zu segments, more than the limit of %zu", n,
                            limits->max_segments);
    m->segs = ehr_arena_calloc(arena, n, sizeof *m->segs);
    if (!m->segs)
        return EHR_ENOMEM;
    struct parser p = {.m = m, .lim = limits, .a = arena, .e = e};
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && data[j] != '\r' && data[j] != '\n')
            j++;
        if (j > i) {
            p.seg_seq = (int)k + 1;
            ehr_status rc = parse_segment(&p, data + i, j - i, &m->segs[k]);
            if (rc)
                return rc;
            if (k > 0 && !strcmp(m->segs[k].name, "MSH"))
                return ehr_hl7_fail(e, EHR_EINVAL, 100, "MSH", (int)k + 1, 0,
                                    "a second MSH segment: one message at a time (split batches "
                                    "first)");
            k++;
        }
        i = j + 1;
    }
    m->n_segs = k;
    *out = m;
    return EHR_OK;
}

/* -- writing -- */

static bool format_escape(const ehr_hl7_msg *m, const char *s, size_t *n)
{
    /* s points after an escape character: is this a formatting escape we keep? */
    const char *end = strchr(s, m->esc);
    if (!end)
        return false;
    size_t len = (size_t)(end - s);
    if (len == 1 && (*s == 'H' || *s == 'N'))
        goto yes;
    if (len >= 3 && s[0] == '.' && s[1] >= 'a' && s[1] <= 'z' && s[2] >= 'a' && s[2] <= 'z' &&
        memcmp(s, ".br", 3))
        goto yes;
    if (len >= 2 && (s[0] == 'C' || s[0] == 'M' || s[0] == 'Z')) {
        for (size_t i = 1; i < len; i++)
            if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F') ||
                  (s[0] == 'Z' && s[i] >= 'A' && s[i] <= 'Z')))
                return false;
        goto yes;
    }
    return false;
yes:
    for (size_t i = 0; i < len; i++)
        if (s[i] == m->field_sep || s[i] == m->comp_sep || s[i] == m->rep_sep ||
            s[i] == m->sub_sep || s[i] == '\r' || s[i] == '\n')
            return false;
    *n = len;
    return true;
}

ehr_status ehr_hl7_escape(const ehr_hl7_msg *m, const char *s, ehr_buf *out)
{
    ehr_status st = EHR_OK;
    for (; *s && !st; s++) {
        char c = *s;
        size_t n;
        if (c == m->esc && format_escape(m, s + 1, &n)) {
            st = ehr_buf_append(out, s, n + 2);
            s += n + 1;
        } else if (c == m->field_sep) {
            st = ehr_buf_printf(out, "%cF%c", m->esc, m->esc);
        } else if (c == m->comp_sep) {
            st = ehr_buf_printf(out, "%cS%c", m->esc, m->esc);
        } else if (c == m->sub_sep) {
            st = ehr_buf_printf(out, "%cT%c", m->esc, m->esc);
        } else if (c == m->rep_sep) {
            st = ehr_buf_printf(out, "%cR%c", m->esc, m->esc);
        } else if (c == m->esc) {
            st = ehr_buf_printf(out, "%cE%c", m->esc, m->esc);
        } else if (m->trunc && c == m->trunc) {
            st = ehr_buf_printf(out, "%cP%c", m->esc, m->esc);
        } else if (c == '\n') {
            st = ehr_buf_printf(out, "%c.br%c", m->esc, m->esc);
        } else if (c == '\r') {
            st = ehr_buf_printf(out, "%cX0D%c", m->esc, m->esc);
        } else {
            st = ehr_buf_putc(out, c);
        }
    }
    return st;
}

ehr_status ehr_hl7_write(const ehr_hl7_msg *m, ehr_buf *out)
{
    ehr_status st = EHR_OK;
    for (size_t i = 0; i < m->n_segs && !st; i++) {
        const ehr_hl7_seg *s = &m->segs[i];
        st = ehr_buf_puts(out, s->name);
        size_t f = 1;
        if (is_header(s->name) && s->n_fields >= 3) {
            st = st ? st : ehr_buf_putc(out, m->field_sep);
            st = st ? st : ehr_buf_puts(out, s->fields[2].reps[0].comps[0].subs[0]);
            f = 3;
        }
        for (; f < s->n_fields && !st; f++) {
            const struct ehr_hl7_field *fd = &s->fields[f];
            st = ehr_buf_putc(out, m->field_sep);
            for (size_t r = 0; r < fd->n && !st; r++) {
                if (r)
                    st = ehr_buf_putc(out, m->rep_sep);
                for (size_t c = 0; c < fd->reps[r].n && !st; c++) {
                    if (c)
                        st = ehr_buf_putc(out, m->comp_sep);
                    const struct ehr_hl7_comp *cp = &fd->reps[r].comps[c];
                    for (size_t k = 0; k < cp->n && !st; k++) {
                        if (k)
                            st = ehr_buf_putc(out, m->sub_sep);
                        st = st ? st : ehr_hl7_escape(m, cp->subs[k], out);
                    }
                }
            }
        }
        st = st ? st : ehr_buf_putc(out, '\r');
    }
    return st;
}

/* -- batches -- */

ehr_status ehr_hl7_split(const char *data, size_t len, ehr_hl7_msg_cb cb, void *ctx,
                         ehr_hl7_error *e)
{
    if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3)) {
        data += 3;
        len -= 3;
    }
    bool in_file = false, in_batch = false;
    const char *msg = NULL;
    int msg_line = 0, line = 0;
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        while (j < len && data[j] != '\r' && data[j] != '\n')
            j++;
        /* a CRLF is one end of line */
        size_t next = j + 1;
        if (j < len && data[j] == '\r' && j + 1 < len && data[j + 1] == '\n')
            next++;
        if (j > i || j >= len)
            line++;
        const char *s = data + i;
        size_t n = j - i;
        bool envelope = n >= 3 && (!memcmp(s, "FHS", 3) || !memcmp(s, "BHS", 3) ||
                                   !memcmp(s, "BTS", 3) || !memcmp(s, "FTS", 3));
        bool starts = n >= 3 && !memcmp(s, "MSH", 3);
        if (j >= len || envelope || starts) {
            if (msg) {
                /* a last segment without a terminator belongs to the message */
                const char *end = envelope || starts ? s : data + len;
                ehr_status st = cb(ctx, msg, (size_t)(end - msg), msg_line);
                if (st)
                    return st;
                msg = NULL;
            }
        }
        if (j >= len)
            break;
        if (starts) {
            msg = s;
            msg_line = line;
        } else if (envelope) {
            /* HL7 2.10.3: FHS [BHS {MSH...} BTS] FTS. Missing trailers are tolerated,
               a header inside an open batch or file is not. */
            if (!memcmp(s, "FHS", 3)) {
                if (in_file)
                    return ehr_hl7_fail(e, EHR_EINVAL, 100, "FHS", line, 0,
                                        "line %d: FHS inside a file that is already open", line);
                in_file = true;
            } else if (!memcmp(s, "BHS", 3)) {
                if (in_batch)
                    return ehr_hl7_fail(e, EHR_EINVAL, 100, "BHS", line, 0,
                                        "line %d: BHS inside a batch that has no BTS yet", line);
                in_batch = true;
            } else if (!memcmp(s, "BTS", 3)) {
                in_batch = false;
            } else {
                in_file = in_batch = false;
            }
        } else if (n > 0 && !msg) {
            char seg[4] = {0};
            memcpy(seg, s, n < 3 ? n : 3);
            return ehr_hl7_fail(e, EHR_EINVAL, 100, seg, line, 0,
                                "line %d: segment %s outside any message (no MSH before it)", line,
                                seg);
        }
        i = next;
    }
    return EHR_OK;
}

/* -- access -- */

const ehr_hl7_seg *ehr_hl7_seg_find(const ehr_hl7_msg *m, const char *name, int nth)
{
    for (size_t i = 0; i < m->n_segs; i++)
        if (!strcmp(m->segs[i].name, name) && --nth == 0)
            return &m->segs[i];
    return NULL;
}

const char *ehr_hl7_get(const ehr_hl7_seg *s, int field, int rep, int comp, int sub)
{
    if (!s || field < 1 || rep < 1 || comp < 1 || sub < 1 || (size_t)field >= s->n_fields)
        return "";
    const struct ehr_hl7_field *f = &s->fields[field];
    if ((size_t)rep > f->n)
        return "";
    const struct ehr_hl7_rep *r = &f->reps[rep - 1];
    if ((size_t)comp > r->n)
        return "";
    const struct ehr_hl7_comp *c = &r->comps[comp - 1];
    if ((size_t)sub > c->n)
        return "";
    return c->subs[sub - 1];
}

const char *ehr_hl7_val(const ehr_hl7_seg *s, int field, int comp)
{
    return ehr_hl7_get(s, field, 1, comp, 1);
}

size_t ehr_hl7_nreps(const ehr_hl7_seg *s, int field)
{
    if (!s || field < 1 || (size_t)field >= s->n_fields)
        return 0;
    return s->fields[field].n;
}

bool ehr_hl7_present(const ehr_hl7_seg *s, int field)
{
    return ehr_hl7_nreps(s, field) > 0;
}

void ehr_hl7_header_get(const ehr_hl7_msg *m, ehr_hl7_header *h)
{
    const ehr_hl7_seg *s = m && m->n_segs ? &m->segs[0] : NULL;
    h->sending_app = ehr_hl7_val(s, 3, 1);
    h->sending_facility = ehr_hl7_val(s, 4, 1);
    h->receiving_app = ehr_hl7_val(s, 5, 1);
    h->receiving_facility = ehr_hl7_val(s, 6, 1);
    h->time = ehr_hl7_val(s, 7, 1);
    h->type = ehr_hl7_val(s, 9, 1);
    h->event = ehr_hl7_val(s, 9, 2);
    h->structure = ehr_hl7_val(s, 9, 3);
    h->control_id = ehr_hl7_val(s, 10, 1);
    h->processing = ehr_hl7_val(s, 11, 1);
    h->version = ehr_hl7_val(s, 12, 1);
    h->accept_ack = ehr_hl7_val(s, 15, 1);
    h->app_ack = ehr_hl7_val(s, 16, 1);
}

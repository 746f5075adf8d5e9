/*
 * hl7v2.h - HL7 version 2 messages: parse, write, acknowledge.
 *
 * A message is parsed into a tree (segments > fields > repetitions >
 * components > sub-components) whose leaves are unescaped text. The
 * separators come from MSH-1 and MSH-2 (HL7 v2.5.1 chapter 2, 2.5.4 and
 * 2.7); escape sequences (2.7.4: \F\ \S\ \T\ \R\ \E\ \Xhh..\ and \.br\) are
 * decoded, any other escape (highlighting \H\ \N\, character sets \C..\
 * \M..\, \Z..\) is kept as written so that writing gives it back.
 * Segments end in CR, LF or CRLF; blank lines are skipped; a leading UTF-8
 * byte-order mark is ignored. Unknown and Z-segments are kept.
 *
 * The writer produces the canonical form: CR after every segment, every
 * leaf escaped with the message's own separators, trailing empty parts
 * dropped. Parsing what it writes gives the same tree.
 *
 * Memory: everything a parse returns lives in the arena the caller passes
 * and goes with it.
 */
#ifndef EHR_HL7V2_HL7V2_H
#define EHR_HL7V2_HL7V2_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/status.h"

/* Limits. Input beyond them is rejected with EHR_ELIMIT and a located error. */
typedef struct ehr_hl7_limits {
    size_t max_message;  /* bytes of one message (default 4 MiB) */
    size_t max_segments; /* segments in one message (default 10,000) */
    size_t max_field;    /* bytes of one field as written (default 1 MiB) */
    size_t max_parts;    /* repetitions of a field, components of a repetition or
                            sub-components of a component (default 1,000 each) */
} ehr_hl7_limits;

#define EHR_HL7_MAX_MESSAGE (4u << 20)
#define EHR_HL7_MAX_SEGMENTS 10000
#define EHR_HL7_MAX_FIELD (1u << 20)
#define EHR_HL7_MAX_PARTS 1000

/* The defaults above. */
void ehr_hl7_limits_default(ehr_hl7_limits *l);

struct ehr_hl7_comp {
    size_t n;    /* sub-components, at least 1 */
    char **subs; /* unescaped, NUL-terminated */
};

struct ehr_hl7_rep {
    size_t n; /* components, at least 1 */
    struct ehr_hl7_comp *comps;
};

struct ehr_hl7_field {
    size_t n; /* repetitions; 0 for an empty field */
    struct ehr_hl7_rep *reps;
};

typedef struct ehr_hl7_seg {
    char name[4]; /* "MSH", "PID", "ZPI" ... */
    /* fields[1] .. fields[n_fields - 1]; fields[0] unused. For MSH (and the
       batch headers FHS, BHS), fields[1] is the field separator and
       fields[2] the encoding characters, each one leaf written as is. */
    size_t n_fields;
    struct ehr_hl7_field *fields;
} ehr_hl7_seg;

typedef struct ehr_hl7_msg {
    char field_sep, comp_sep, rep_sep, esc, sub_sep, trunc; /* trunc 0: none (before v2.7) */
    size_t n_segs;
    ehr_hl7_seg *segs;
} ehr_hl7_msg;

/* Where a problem is (HL7 ERR-2, ERL) and what it is (ERR-3, table 0357). */
typedef struct ehr_hl7_error {
    char seg[4]; /* segment id, "" when unknown */
    int seg_seq; /* 1-based position of the segment in the message, 0 unknown */
    int field;   /* 0 unknown */
    int rep, comp, sub;
    int code; /* table 0357: 100 segment sequence, 101 required field missing,
                 102 data type, 103 table value not found, 200 unsupported message
                 type, 201 unsupported event, 202 unsupported processing id,
                 203 unsupported version, 204 unknown key, 205 duplicate key,
                 207 application internal error */
    char text[256];
} ehr_hl7_error;

/* Fill e; returns st (for `return ehr_hl7_fail(...)`). */
ehr_status ehr_hl7_fail(ehr_hl7_error *e, ehr_status st, int code, const char *seg, int seg_seq,
                        int field, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/*
 * Parse one message (which must begin with MSH after an optional BOM).
 * NULL limits: the defaults. EHR_EINVAL or EHR_ELIMIT with e filled.
 */
ehr_status ehr_hl7_parse(const char *data, size_t len, const ehr_hl7_limits *limits,
                         ehr_arena *arena, ehr_hl7_msg **out, ehr_hl7_error *e);

/* Append the canonical form of m to out. */
ehr_status ehr_hl7_write(const ehr_hl7_msg *m, ehr_buf *out);

/* Append s escaped with m's separators (2.7.4). */
ehr_status ehr_hl7_escape(const ehr_hl7_msg *m, const char *s, ehr_buf *out);

/*
 * Split a file or stream holding several messages (optionally in batch
 * envelopes FHS/BHS ... BTS/FTS, HL7 v2.5.1 2.10.3) into messages: cb is
 * called with each message's bytes, from its MSH to the next MSH or
 * envelope segment. A segment outside any message (other than the
 * envelope) is an error naming its line; so is a BHS without BTS or an
 * FHS without FTS. Non-OK from cb stops.
 */
typedef ehr_status (*ehr_hl7_msg_cb)(void *ctx, const char *data, size_t len, int line);
ehr_status ehr_hl7_split(const char *data, size_t len, ehr_hl7_msg_cb cb, void *ctx,
                         ehr_hl7_error *e);

/* -- access (all indexes 1-based; absent parts read as "") -- */

/* The nth (1-based) segment named name, or NULL. */
const ehr_hl7_seg *ehr_hl7_seg_find(const ehr_hl7_msg *m, const char *name, int nth);
/* Leaf text of field/rep/comp/sub; "" when absent. */
const char *ehr_hl7_get(const ehr_hl7_seg *s, int field, int rep, int comp, int sub);
/* Shorthand: first repetition, first sub-component. */
const char *ehr_hl7_val(const ehr_hl7_seg *s, int field, int comp);
/* Number of repetitions of a field (0 when empty or absent). */
size_t ehr_hl7_nreps(const ehr_hl7_seg *s, int field);
/* True when the field (any part of it) has text. */
bool ehr_hl7_present(const ehr_hl7_seg *s, int field);

/* -- message header facts -- */
typedef struct ehr_hl7_header {
    const char *sending_app, *sending_facility, *receiving_app, *receiving_facility;
    const char *time;                 /* MSH-7 */
    const char *type;                 /* MSH-9.1 "ADT" */
    const char *event;                /* MSH-9.2 "A01" */
    const char *structure;            /* MSH-9.3 "ADT_A01" or "" */
    const char *control_id;           /* MSH-10 */
    const char *processing;           /* MSH-11 "P", "T", "D" */
    const char *version;              /* MSH-12 "2.5.1" */
    const char *accept_ack, *app_ack; /* MSH-15, MSH-16: "AL" "NE" "ER" "SU" or "" */
} ehr_hl7_header;

void ehr_hl7_header_get(const ehr_hl7_msg *m, ehr_hl7_header *h);

/* -- acknowledgements (HL7 v2.5.1 2.9) -- */

/* MSA-1 codes: original mode AA/AE/AR; enhanced mode CA/CE/CR (commit) and AA/AE/AR. */
typedef enum {
    EHR_HL7_AA,
    EHR_HL7_AE,
    EHR_HL7_AR,
    EHR_HL7_CA,
    EHR_HL7_CE,
    EHR_HL7_CR
} ehr_hl7_ack_code;

const char *ehr_hl7_ack_code_str(ehr_hl7_ack_code c);

/*
 * Build an ACK for m (which may be NULL when the message could not be
 * parsed at all: the ACK then uses the default separators and names no
 * control id). error may be NULL (no ERR segment). app/facility name this
 * system (MSH-3/4 of the ACK). The ACK's control id is ack_id.
 */
ehr_status ehr_hl7_ack(const ehr_hl7_msg *m, ehr_hl7_ack_code code, const ehr_hl7_error *error,
                       const char *app, const char *facility, const char *ack_id, ehr_buf *out);

/*
 * Acknowledgement modes (2.9.2, 2.9.3). Enhanced mode when MSH-15 or
 * MSH-16 is valued: an accept (commit) ACK CA/CE/CR once the message is
 * safely stored, as MSH-15 asks, then an application ACK AA/AE/AR as
 * MSH-16 asks. Original mode: one application ACK, always.
 */
bool ehr_hl7_enhanced(const ehr_hl7_msg *m);
/* Is an ACK wanted under condition ("AL", "NE", "ER", "SU"; "" = AL) for
   an outcome that is ok or not? */
bool ehr_hl7_ack_wanted(const char *condition, bool ok);

/* Read a timestamp (DTM: YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]) as a FHIR
   date or dateTime into out; false when malformed. date_only keeps the date. */
bool ehr_hl7_dtm_to_fhir(const char *dtm, bool date_only, char *out, size_t cap);

#endif

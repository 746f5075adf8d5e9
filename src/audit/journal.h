/*
 * journal.h - the audit journal: a file next to the database
 * (`DB.audit-journal`) where the audit records of reads, searches, denials
 * and sign-ins are appended, one write(2) each, before the request is
 * answered. A background thread of the repository applies them into the
 * hash-chained audit table in small batches (repo.c, "audit journal"), so a
 * read never waits for the database's single writer.
 *
 * Format. A header line, then one line per record:
 *
 *     EHR-AUDIT-JOURNAL 1 GENERATION PREV_GENERATION PREV_OFFSET\n
 *     CRC LEN TIME EVENT\n
 *
 * CRC is the CRC-32 (zlib) of everything after "CRC " up to the newline, as
 * 8 lowercase hex digits; LEN the byte length of EVENT (compact JSON, never
 * a raw newline); TIME microseconds since the epoch. A record is good when
 * every field parses, the lengths agree and the CRC matches. A record is
 * addressed by its byte offset in the file. GENERATION numbers the file:
 * rotation (ehr_journal_rotate) writes a new file with the next number, so
 * "generation G, offset O" names one place for good (the repository keeps
 * how far it applied as that pair, store.h audit_applied_get). A rotation
 * carries the records not yet applied into the new file: its first record
 * is the one at PREV_OFFSET of generation PREV_GENERATION (PREV_OFFSET 0:
 * nothing was carried).
 *
 * Damage. Reading stops being trusted at the first bad record: if good
 * records follow it, the bad span is "damaged" (counted and skipped; the
 * repository records the loss in the audit chain); if none follow, it is a
 * torn tail (a write cut short by a crash: its request was never answered)
 * and is discarded.
 *
 * Ownership: one process at a time appends and rotates (an exclusive flock
 * on the file; a second opener gets EHR_EBUSY). Other processes may open it
 * to read (EHR_JOURNAL_READ: no lock, no create). Threads: append is safe
 * from any thread; read, sync and rotate must not run concurrently with
 * each other (the repository's applier serialises them) but may run while
 * others append.
 */
#ifndef EHR_AUDIT_JOURNAL_H
#define EHR_AUDIT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct ehr_journal ehr_journal;

/* The largest event one record may carry (bytes). */
#define EHR_JOURNAL_MAX_EVENT (1 << 20)

/*
 * Open (or create, mode 0600) the journal at path and lock it. A new or
 * empty file gets a header with generation new_generation. EHR_EBUSY when
 * another process holds it; EHR_EINVAL when the file is not a journal.
 * With read_only, open an existing journal to read it, without the lock
 * (ENOTFOUND when there is none). Caller frees with ehr_journal_free
 * (which unlocks).
 */
ehr_status ehr_journal_open(const char *path, int64_t new_generation, bool read_only,
                            ehr_journal **out, ehr_err *err);
void ehr_journal_free(ehr_journal **j);

int64_t ehr_journal_generation(const ehr_journal *j);
/* Where the carried records came from (header; prev_offset 0: none). */
void ehr_journal_prev(const ehr_journal *j, int64_t *prev_generation, int64_t *prev_offset);
/* Offset of the first record (just after the header). */
int64_t ehr_journal_start(const ehr_journal *j);
/* Offset just after the last byte written (records appended so far; at
   open, the file's size, which may end in a torn record). */
int64_t ehr_journal_end(ehr_journal *j);

/*
 * Append one record with a single write(2) (O_APPEND) and return: the
 * record survives the process dying once this returns; it reaches the disk
 * with ehr_journal_sync or the kernel's own writeback. EHR_ELIMIT for an
 * event over EHR_JOURNAL_MAX_EVENT or one holding a newline; EHR_EIO when
 * the write fails (nothing is left of the record then).
 */
ehr_status ehr_journal_append(ehr_journal *j, int64_t time, const char *event, size_t len,
                              ehr_err *err);

/* fdatasync the file when something was appended since the last call. */
ehr_status ehr_journal_sync(ehr_journal *j, ehr_err *err);

/* What a read found. */
typedef struct ehr_journal_scan {
    int64_t end;           /* offset just after the last good record passed on */
    size_t n_records;      /* good records passed on */
    size_t n_damaged;      /* bad spans followed by good records (skipped) */
    int64_t first_damaged; /* offset of the first such span; 0 when none */
    bool torn;             /* the range ends in bad or incomplete bytes (discarded) */
} ehr_journal_scan;

/* Called once per good record: its offset, the offset after it, its fields.
   event is valid during the call only. Non-OK stops the read. */
typedef ehr_status (*ehr_journal_cb)(void *ctx, int64_t offset, int64_t next, int64_t time,
                                     const char *event, size_t len);

/*
 * Read the records in [from, to) (to 0: the end), at most max_records of
 * them (0: no limit), calling cb for each good one. from must be a record
 * boundary. When the limit stops the read, scan->end is where to go on.
 */
ehr_status ehr_journal_read(ehr_journal *j, int64_t from, int64_t to, size_t max_records,
                            ehr_journal_cb cb, void *ctx, ehr_journal_scan *scan, ehr_err *err);

/*
 * Replace the file with generation `generation` (greater than the current
 * one) holding the bytes [keep_from, keep_to) of this one after its header
 * (the records not yet applied; keep_to 0: up to the end; keep_from ==
 * keep_to keeps none). The new file is written and fsynced beside the old
 * one, locked, and renamed over it, so a crash leaves either file whole.
 * Appends wait only for the last step (the records appended while the
 * new file was written are copied, then the rename).
 */
ehr_status ehr_journal_rotate(ehr_journal *j, int64_t generation, int64_t keep_from,
                              int64_t keep_to, ehr_err *err);

#endif

/*
 * progress.h - progress of long commands (ehr import, ehr export): a bar
 * with items per second and the time left on a terminal, a plain line
 * every few seconds otherwise (logs, CI). Written to stderr. Not
 * thread-safe: the caller serialises calls.
 */
#ifndef EHR_CLI_PROGRESS_H
#define EHR_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ehr_progress {
    int mode; /* 0: silent, 1: terminal bar, 2: plain lines */
    const char *what;
    size_t total; /* work units (bytes, resources) expected; 0: unknown */
    size_t done;  /* work units done */
    size_t items; /* resources done, for the rate */
    int64_t t0, last;
    bool drawn;
} ehr_progress;

/* mode -1: a bar when stderr is a terminal, lines otherwise. */
void ehr_progress_start(ehr_progress *p, size_t total, int mode, const char *what);
/* Add done work units and items; redraws at most 5 times a second (lines: every 5 s). */
void ehr_progress_update(ehr_progress *p, size_t units, size_t items);
/* Erase the bar before printing something else on stderr. */
void ehr_progress_clear(ehr_progress *p);
/* The final state, and a newline after the bar. */
void ehr_progress_done(ehr_progress *p);

#endif

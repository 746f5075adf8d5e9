/* progress.c - progress bars and lines for long commands (see progress.h). */
#include "cli/progress.h"

#include <stdio.h>
#include <unistd.h>

#include "core/util.h"

void ehr_progress_start(ehr_progress *p, size_t total, int mode, const char *what)
{
    p->mode = mode < 0 ? (isatty(STDERR_FILENO) ? 1 : 2) : mode;
    p->what = what;
    p->total = total;
    p->done = p->items = 0;
    p->t0 = p->last = ehr_time_now_us();
    p->drawn = false;
}

static void draw(ehr_progress *p, int64_t now)
{
    double secs = (double)(now - p->t0) / 1e6;
    double rate = secs > 0 ? (double)p->items / secs : 0;
    double frac = p->total ? (double)p->done / (double)p->total : 0;
    if (frac > 1)
        frac = 1;
    long eta = frac > 0.001 && frac < 1 ? (long)(secs / frac - secs) : 0;
    if (p->mode == 1) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r%s [%s] %3d%%  %zu resources  %.0f/s  ETA %ld:%02ld ", p->what, bar,
                (int)(frac * 100), p->items, rate, eta / 60, eta % 60);
        p->drawn = true;
    } else {
        fprintf(stderr, "%s: %d%%, %zu resources, %.0f resources/s, about %ld s left\n", p->what,
                (int)(frac * 100), p->items, rate, eta);
    }
    fflush(stderr);
}

void ehr_progress_update(ehr_progress *p, size_t units, size_t items)
{
    p->done += units;
    p->items += items;
    if (!p->mode)
        return;
    int64_t now = ehr_time_now_us();
    if (now - p->last < (p->mode == 1 ? 200000 : 5000000))
        return;
    p->last = now;
    draw(p, now);
}

void ehr_progress_clear(ehr_progress *p)
{
    if (p->mode == 1 && p->drawn) {
        fprintf(stderr, "\r%*s\r", 79, "");
        p->drawn = false;
    }
}

void ehr_progress_done(ehr_progress *p)
{
    if (p->mode == 1) {
        p->done = p->total;
        draw(p, ehr_time_now_us());
        fputc('\n', stderr);
    }
}

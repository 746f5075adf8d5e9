/*
 * static.h - static files (the web apps) from a folder on disk.
 *
 * ehr_http_static_new(root) makes a handler for the server's chain (mount
 * it last, at "/"): GET and HEAD of /PATH answer ROOT/PATH, "/" and any
 * path ending in "/" answer its index.html. What it refuses, as a plain
 * 404 (never telling why): paths with a segment that starts with "." (so
 * no "..", no hidden files), a backslash, a control character, a path of
 * more than 1024 bytes, anything not a regular file, and anything whose
 * real path (symlinks resolved) leaves the root. Paths under /fhir,
 * /oauth/, /auth/ and /.well-known/ are never answered (NEXT), so the APIs
 * keep their own 404s.
 *
 * Answers carry a Content-Type by extension (html, js/mjs, css, json,
 * svg, png, ico, webmanifest, txt, map, woff2; others
 * application/octet-stream), a strong ETag (size and mtime in ns) with
 * If-None-Match answered 304, Last-Modified, and Cache-Control "no-cache"
 * (the browser keeps a copy but asks each time: an update is seen at
 * once, an unchanged file costs a 304). The server gzips text bodies for
 * clients that accept it (http.h). HTML pages also get a
 * Content-Security-Policy that allows scripts, styles and connections to
 * this origin only (no inline script), and frame-ancestors 'none'.
 * Files over 16 MiB are refused (500 would be wrong: 404).
 */
#ifndef EHR_HTTP_STATIC_H
#define EHR_HTTP_STATIC_H

#include "http/http.h"

typedef struct ehr_http_static ehr_http_static;

/* A handler context serving root (copied; resolved with realpath). NULL
   when root is not a readable folder. */
ehr_http_static *ehr_http_static_new(const char *root);
void ehr_http_static_free(ehr_http_static **s);
/* The resolved root. */
const char *ehr_http_static_root(const ehr_http_static *s);
/* The handler (ctx: the ehr_http_static). */
int ehr_http_static_handle(void *ctx, ehr_http_request *req, ehr_http_response *res);

/* The Content-Type for a file name by its extension. */
const char *ehr_http_content_type(const char *name);

#endif

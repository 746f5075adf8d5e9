/*
 * authcli.h - what the user, client, token and audit commands share:
 * opening the repository with the auth module, and naming who runs them.
 */
#ifndef EHR_CLI_AUTHCLI_H
#define EHR_CLI_AUTHCLI_H

#include "auth/auth.h"
#include "cli/opts.h"
#include "repo/repo.h"

/* Open the store of so with auth (default configuration); false with a message. */
bool ehr_cli_auth_open(struct ehr_store_opts *so, const char *cmd, ehr_repo **repo,
                       ehr_auth **auth);
void ehr_cli_auth_close(ehr_repo **repo, ehr_auth **auth);
/* The person running the command, for the audit log: "cli:LOGIN". */
ehr_auth_actor ehr_cli_actor(void);
/* A password from --password VALUE, or from standard input when VALUE is "-". */
const char *ehr_cli_password(const char *v, char *buf, size_t cap);

#endif

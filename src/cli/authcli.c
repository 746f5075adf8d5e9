/* authcli.c - helpers of the auth-related commands (see authcli.h). */
#include "cli/authcli.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool ehr_cli_auth_open(struct ehr_store_opts *so, const char *cmd, ehr_repo **repo, ehr_auth **auth)
{
    *repo = NULL;
    *auth = NULL;
    if (!ehr_opts_store_target(so, cmd))
        return false;
    ehr_err err = {{0}};
    if (ehr_repo_open(so->target, repo, &err)) {
        fprintf(stderr, "ehr %s: %s\n", cmd, err.msg);
        return false;
    }
    ehr_auth_config cfg;
    ehr_auth_config_defaults(&cfg);
    if (ehr_auth_new(*repo, &cfg, auth, &err)) {
        fprintf(stderr, "ehr %s: %s\n", cmd, err.msg);
        ehr_repo_free(repo);
        return false;
    }
    return true;
}

void ehr_cli_auth_close(ehr_repo **repo, ehr_auth **auth)
{
    ehr_auth_free(auth);
    ehr_repo_free(repo);
}

ehr_auth_actor ehr_cli_actor(void)
{
    static char name[96];
    const struct passwd *pw = getpwuid(getuid());
    snprintf(name, sizeof name, "cli:%s", pw && pw->pw_name ? pw->pw_name : "unknown");
    return (ehr_auth_actor){.name = name, .client = "cli"};
}

const char *ehr_cli_password(const char *v, char *buf, size_t cap)
{
    if (!v || strcmp(v, "-"))
        return v;
    if (!fgets(buf, (int)cap, stdin))
        return NULL;
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf;
}

/*
 * oci.h - what the oci*.c files (minirun-oci's native verbs) share among themselves;
 * their interface to the rest is ociverbs.h.
 */
#ifndef MINIRUN_OCI_H
#define MINIRUN_OCI_H

#include <stddef.h>

#include "json.h"
#include "ociverbs.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define PROGRAM "minirun-oci"
#define OCI_VERSION "1.0.2"
#define FIFO "exec.fifo"
#define DEFAULT_ROOT "/run/minirun-oci"
#define CGROUP_ATTEMPTS 55 /* minirun/cgroups: 0.2 ms doubling to 10 ms, about half a second */

extern char **environ;

/* ociverbs.c: messages and small helpers */
int oci_fail(struct mr_oci_error *e, int kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int oci_fail_os(struct mr_oci_error *e, const char *path, int err); /* "PATH: strerror", as errors.message */
void oci_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void oci_say(const char *prefix, const char *msg);  /* "minirun-oci: PREFIXmsg" on stderr, errors ignored */
void oci_one_line(char *s);                         /* errors.message: line breaks become spaces */
const char *oci_repr(const char *s);                /* Python's repr() of a str, for ids in messages */
char *oci_join(const char *a, const char *b);       /* os.path.join, malloc'd */
void oci_sleep(double seconds);
double oci_monotonic(void);

/* ocistore.c: the root, the record, the container's process, removal */
extern const char *const OCI_STATUS[]; /* by enum mr_oci_status */
char *oci_state_dir(const char *root, const char *id);
struct mr_json *oci_read_state(const char *root, const char *id, struct mr_oci_error *e);
const char *oci_record_id(const struct mr_json *st);
int oci_alive(const struct mr_json *st);
int oci_record_status(const char *root, const struct mr_json *st);
int oci_write_state(struct mr_buf *b, const char *root, const struct mr_json *st, int indent, int level,
                    struct mr_oci_error *e); /* store.oci_state, as json.dumps writes it */
char *oci_state_text(const char *root, const struct mr_json *st, int indent, struct mr_oci_error *e);
int oci_send_signal(const struct mr_json *st, int sig, struct mr_oci_error *e); /* 1 sent, 0 gone, -1 */
int oci_list_ids(const char *root, char ***ids, size_t *n, struct mr_oci_error *e);
void oci_free_ids(char **ids, size_t n);

/* ocicgroup.c: the container's directory in every hierarchy */
struct oci_cgroup {
    char *dirs[64];
    int n;
    int unified; /* index of the v2 directory, or -1 */
};
struct oci_pids {
    long long *v;
    size_t n, cap;
};
int oci_record_cgroup(const struct mr_json *st, struct oci_cgroup *cg, struct mr_oci_error *e);
void oci_cgroup_free(struct oci_cgroup *cg);
int oci_read_pids(char *const *dirs, int n, struct oci_pids *out, struct mr_oci_error *e); /* sorted, unique */
int oci_cgroup_destroy(const struct oci_cgroup *cg, struct mr_oci_error *e);
int oci_cgroup_remove_if_unused(const struct oci_cgroup *cg, struct mr_oci_error *e); /* 1, 0 in use, -1 */

/* ocips.c: `ps -ef`'s lines for these pids (sorted), read from /proc */
int oci_ps_table(const struct oci_pids *pids, struct mr_buf *out, struct mr_oci_error *e);

#endif

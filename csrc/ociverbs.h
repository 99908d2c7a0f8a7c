/*
 * ociverbs.h - minirun-oci's verbs that engines call in a loop, in C: state, start, kill,
 * delete, ps, list, features. One implementation: the native front (minirun-oci) runs
 * them through oci_verbs_main without starting Python, and Python's runtime.py and
 * store.py call the same functions through cffi (minirun/ociverbs.py).
 *
 * Errors: a function returns 0 (or what it returns), or -1 with `e` filled in: the
 * kind (minirun/errors.py's classes, which the binding raises) and the one-line message.
 * Warnings go to the sink set with mr_oci_set_warn (the front's log, or Python's log.warning).
 */
#ifndef MINIRUN_OCIVERBS_H
#define MINIRUN_OCIVERBS_H

#define MR_OCI_MSG_MAX 2048

enum mr_oci_error_kind {
    MR_OCI_STORE = 1, /* store.StoreError: no such container, a bad id, damaged state, an untrusted root */
    MR_OCI_SPEC = 2,  /* SpecError: the verb cannot be done now (not running, not created...) */
    MR_OCI_SETUP = 3, /* SetupError: start could not release the process */
    MR_OCI_CGROUP = 4, /* CgroupError: a cgroup file or directory failed */
    MR_OCI_OS = 5,    /* OSError: another system call failed */
};

struct mr_oci_error {
    int kind;
    char msg[MR_OCI_MSG_MAX];
};

enum mr_oci_status { MR_OCI_CREATED = 0, MR_OCI_RUNNING = 1, MR_OCI_STOPPED = 2, MR_OCI_PAUSED = 3 };

void mr_oci_set_warn(void (*warn)(const char *msg));

/* The state root as every verb uses it (store.checked_root): malloc'd, or NULL. */
char *mr_oci_checked_root(const char *root, struct mr_oci_error *e);
int mr_oci_check_id(const char *id, struct mr_oci_error *e);
/* The one id check (minirun/ids.py binds it): runc's rule if `oci`, else docker's names. */
int mr_check_id(const char *id, size_t len, int oci, struct mr_oci_error *e);
/* The container's directory flock (store.locked), for one change: the fd to close, or -1. */
int mr_oci_lock(const char *root, const char *id, struct mr_oci_error *e);

/* store.status from a record's fields (has_start 0: no pid_start recorded). */
int mr_oci_status(const char *root, const char *id, long long pid, long long pid_start, int has_start,
                  const char *freeze_file);
/* `state`'s JSON (store.oci_state) of the container as its state.json says: malloc'd, or NULL. */
char *mr_oci_state(const char *root, const char *id, int indent, struct mr_oci_error *e);
/* store.list_ids: the ids, one per line (malloc'd). */
char *mr_oci_list_ids(const char *root, struct mr_oci_error *e);
/* `list`'s output: the ids (quiet), the states as JSON (format "json"), or the table. */
char *mr_oci_list_text(const char *root, int quiet, const char *format, struct mr_oci_error *e);
/* `ps`'s output: the pids as JSON (format "json") or ps(1)'s lines of them ("table"). */
char *mr_oci_ps_text(const char *root, const char *id, const char *format, char *const *ps_args, int n_ps_args,
                     struct mr_oci_error *e);
/* The pids in the container's cgroup as a JSON list (malloc'd), or NULL. */
char *mr_oci_pids(const char *root, const char *id, struct mr_oci_error *e);

/* minirun/state.py's store mechanics, for every container (minirun's and minirun-oci's):
 * the one liveness rule (the recorded init, by pid and start time, not a zombie), a
 * process's start time (-1 once gone), a signal through a pidfd checked against the
 * recorded start time (1 sent, 0 that process is gone), a tree removed through
 * directory fds, never following a link, and a file replaced in one step. */
int mr_pid_alive(long long pid, long long pid_start, int has_start);
long long mr_start_time(long long pid);
int mr_send_signal(long long pid, long long pid_start, int has_start, int sig, struct mr_oci_error *e);
int mr_rmtree(const char *path, struct mr_oci_error *e);
/* state.write's last step: the complete file at `tmp` becomes `final`, atomically for readers. */
int mr_replace_file(const char *tmp, const char *final, struct mr_oci_error *e);

/* minirun/cgroups' Cgroup.kill, destroy, remove_if_unused and pids for the container's
 * directories as the manager knows them (`unified`: the index of the v2 one, or -1):
 * the one implementation, which delete and kill --all above use too. remove_if_unused
 * returns 1 removed, 0 left alone (in use); pids a space-separated list (malloc'd). */
int mr_cgroup_kill(char *const *dirs, int n, int unified, struct mr_oci_error *e);
int mr_cgroup_destroy(char *const *dirs, int n, int unified, struct mr_oci_error *e);
int mr_cgroup_remove_if_unused(char *const *dirs, int n, struct mr_oci_error *e);
char *mr_cgroup_pids(char *const *dirs, int n, struct mr_oci_error *e);

/* Container.start: release the process waiting on the exec fifo of `state_dir` (the
 * recorded pid, pid_start: the liveness rule tells when it is gone); `start_waits`: read
 * on to its execve, or the startContainer hooks' failure. mr_oci_start runs it. */
int mr_release_exec_fifo(const char *state_dir, const char *id, long long pid, long long pid_start, int has_start,
                         int start_waits, struct mr_oci_error *e);
int mr_oci_start(const char *root, const char *id, struct mr_oci_error *e);
int mr_oci_kill(const char *root, const char *id, int sig, int all, struct mr_oci_error *e);
int mr_oci_delete(const char *root, const char *id, int force, struct mr_oci_error *e);

/* "KILL", "SIGKILL", "9" -> 9; -1 if not a signal's name or number. */
int mr_oci_parse_signal(const char *text);

/* Run the OCI hooks `hooks_json` (a JSON list of hook objects) of `kind` with the state
 * JSON on their stdin: fatal, the first failure is the error; else each failure is a
 * warning and the next hook runs. */
int mr_oci_run_hooks(const char *kind, const char *hooks_json, const char *state_json, int fatal,
                     struct mr_oci_error *e);

/* One line of the --log file (runc's logrus: JSON or text), for Python's oci/log.py too,
 * and a value as logrus's text format writes it. */
char *mr_oci_log_line(const char *level, const char *msg, size_t msg_len, int json);
char *mr_oci_log_text_value(const char *s, size_t n);

void mr_oci_free(void *p);

/* The native front's entry (front.c calls it first with its own argc/argv): the exit
 * status of a verb it handles, or OCI_NOT_NATIVE for anything else (create, run, exec,
 * update, pause, resume, spec, --version, --help, and every command line it does not
 * parse: Python then runs and reports it); nothing has been done or written then. */
#define OCI_NOT_NATIVE (-2)
int oci_verbs_main(int argc, char **argv);

#endif

/*
 * ocicli.c - oci_verbs_main: runc's command line for the verbs ociverbs.c runs, in the
 * native front (front.c) only: anything else, or anything it does not parse, is
 * OCI_NOT_NATIVE before it has done or written anything, and Python takes it.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <errno.h>
#include <fcntl.h>

#include "oci.h"

/* The --log file and its format, as runc's global flags set them. */
static struct {
    const char *path;
    int json;
    int debug;
} log_target;

static void log_write(const char *level, const char *msg)
{
    char *line;
    int fd;

    if (!log_target.path || !(line = mr_oci_log_line(level, msg, strlen(msg), log_target.json)))
        return;
    fd = open(log_target.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        size_t n = strlen(line);

        line[n] = '\n'; /* the NUL's place: one write, one record */
        if (write(fd, line, n + 1) < 0) {
            /* the message still reaches stderr */
        }
        close(fd);
    }
    free(line);
}

static void front_warn(const char *msg)
{
    log_write("warning", msg);
    oci_say("warning: ", msg);
}

/* main.py's tables: every verb (to find it), and the options of the ones run here. */
static const char *const ALL_VERBS[] = {"create", "run", "start", "state", "pause", "resume", "kill", "delete",
                                        "exec", "ps", "list", "update", "features", "spec"};

struct option {
    const char *name;
    int takes_value;
};

static const struct option GLOBAL[] = {
    {"root", 1}, {"log", 1}, {"log-format", 1}, {"debug", 0}, {"systemd-cgroup", 0}, {"rootless", 1},
    {"criu", 1}, {"version", 0}, {"v", 0}, {"help", 0}, {"h", 0}, {NULL, 0},
};
static const struct option NO_OPTIONS[] = {{NULL, 0}};
static const struct option KILL_OPTIONS[] = {{"all", 0}, {NULL, 0}};
static const struct option DELETE_OPTIONS[] = {{"force", 0}, {NULL, 0}};
static const struct option PS_OPTIONS[] = {{"format", 1}, {NULL, 0}};
static const struct option LIST_OPTIONS[] = {{"format", 1}, {"quiet", 0}, {NULL, 0}};

static const char *const ALIASES[][2] = {{"b", "bundle"}, {"d", "detach"}, {"f", "force"}, {"a", "all"},
                                         {"p", "process"}, {"e", "env"}, {"u", "user"}, {"t", "tty"},
                                         {"q", "quiet"}, {"r", "resources"}, {"g", "additional-gids"},
                                         {"c", "cap"}};

#define MAX_OPTS 16

struct parsed {
    const char *names[MAX_OPTS];
    const char *values[MAX_OPTS]; /* a flag's: "1" or NULL */
    int n;
    char *rest[64];
    int n_rest;
};

static const char *opt(const struct parsed *p, const char *name)
{
    for (int i = p->n - 1; i >= 0; i--)
        if (!strcmp(p->names[i], name))
            return p->values[i];
    return NULL;
}

static const struct option *find_option(const struct option *table, const char *name, size_t len)
{
    for (const struct option *o = table; o->name; o++)
        if (strlen(o->name) == len && !strncmp(o->name, name, len))
            return o;
    return NULL;
}

/* main.parse: --name value, --name=value, one dash or two, flags anywhere; -1 for what
 * it would refuse (Python then says why). */
static int parse_args(int argc, char **argv, const struct option *table, struct parsed *out)
{
    out->n = out->n_rest = 0;
    for (int i = 0; i < argc; i++) {
        char *arg = argv[i], *name, *eq;
        const struct option *o;
        size_t len;

        if (!strcmp(arg, "--")) {
            for (i++; i < argc; i++)
                if (out->n_rest < 64)
                    out->rest[out->n_rest++] = argv[i];
                else
                    return -1;
            break;
        }
        if (arg[0] != '-' || !strcmp(arg, "-")) {
            if (out->n_rest == 64)
                return -1;
            out->rest[out->n_rest++] = arg;
            continue;
        }
        name = arg + strspn(arg, "-");
        eq = strchr(name, '=');
        len = eq ? (size_t)(eq - name) : strlen(name);
        o = find_option(table, name, len);
        for (size_t k = 0; !o && k < sizeof(ALIASES) / sizeof(ALIASES[0]); k++)
            if (strlen(ALIASES[k][0]) == len && !strncmp(ALIASES[k][0], name, len))
                o = find_option(table, ALIASES[k][1], strlen(ALIASES[k][1]));
        if (!o || out->n == MAX_OPTS)
            return -1;
        const char *value;

        if (o->takes_value) {
            if (eq)
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else
                return -1;
        } else {
            value = "1";
            if (eq && (!strcasecmp(eq + 1, "false") || !strcmp(eq + 1, "0")))
                value = NULL;
        }
        out->names[out->n] = o->name;
        out->values[out->n++] = value;
    }
    return 0;
}

static int is_verb(const char *s)
{
    for (size_t i = 0; i < sizeof(ALL_VERBS) / sizeof(ALL_VERBS[0]); i++)
        if (!strcmp(s, ALL_VERBS[i]))
            return 1;
    return 0;
}

/* main._is_value: argv[i] looks like a verb but is the value of a global option (--root start). */
static int is_value(char **argv, int i)
{
    const char *prev, *name;
    const struct option *o;

    if (i == 0)
        return 0;
    prev = argv[i - 1];
    name = prev + strspn(prev, "-");
    if (prev[0] != '-' || strchr(name, '='))
        return 0;
    o = find_option(GLOBAL, name, strlen(name));
    return o && o->takes_value;
}

static int print_out(const char *text)
{
    size_t n = strlen(text);

    while (n) {
        ssize_t w = write(1, text, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        text += w;
        n -= (size_t)w;
    }
    return 0;
}

static int report(struct mr_oci_error *e)
{
    oci_one_line(e->msg);
    log_write("error", e->msg);
    oci_say("", e->msg);
    return 1;
}

#include "oci_features.h" /* FEATURES: minirun/oci/defaults.py's features(), generated by setup.py */

int oci_verbs_main(int argc, char **argv)
{
    struct parsed global, args;
    struct mr_oci_error e;
    const char *verb, *root_arg, *format, *env_root;
    char *root;
    int verb_at = -1, ret = 0, sig = 15;

    argc--, argv++;
    for (int i = 0; i < argc; i++)
        if (is_verb(argv[i]) && !is_value(argv, i)) {
            verb_at = i;
            break;
        }
    if (verb_at < 0 || parse_args(verb_at, argv, GLOBAL, &global) < 0 || global.n_rest)
        return OCI_NOT_NATIVE;
    verb = argv[verb_at];
    format = opt(&global, "log-format");
    if (opt(&global, "version") || opt(&global, "v") || opt(&global, "help") || opt(&global, "h") ||
        opt(&global, "systemd-cgroup") || (format && strcmp(format, "text") && strcmp(format, "json")))
        return OCI_NOT_NATIVE;
    const struct option *table = !strcmp(verb, "kill")     ? KILL_OPTIONS
                                 : !strcmp(verb, "delete") ? DELETE_OPTIONS
                                 : !strcmp(verb, "ps")     ? PS_OPTIONS
                                 : !strcmp(verb, "list")   ? LIST_OPTIONS
                                 : !strcmp(verb, "state") || !strcmp(verb, "start") || !strcmp(verb, "features")
                                     ? NO_OPTIONS
                                     : NULL;

    if (!table || parse_args(argc - verb_at - 1, argv + verb_at + 1, table, &args) < 0)
        return OCI_NOT_NATIVE;
    if (!strcmp(verb, "kill")) {
        if (args.n_rest < 1 || args.n_rest > 2)
            return OCI_NOT_NATIVE;
        if ((sig = mr_oci_parse_signal(args.n_rest > 1 ? args.rest[1] : "TERM")) < 0)
            return OCI_NOT_NATIVE; /* Python says "unknown signal" */
    } else if (!strcmp(verb, "ps")) {
        if (args.n_rest < 1)
            return OCI_NOT_NATIVE;
    } else if (strcmp(verb, "list") && strcmp(verb, "features") && args.n_rest != 1) {
        return OCI_NOT_NATIVE;
    }

    /* From here on this is the verb's run: Python is not needed. */
    log_target.path = opt(&global, "log");
    log_target.json = format && !strcmp(format, "json");
    log_target.debug = opt(&global, "debug") != NULL;
    mr_oci_set_warn(front_warn);
    signal(SIGPIPE, SIG_IGN);
    root_arg = opt(&global, "root");
    env_root = getenv("MINIRUN_OCI_ROOT");
    if (!root_arg || !root_arg[0])
        root_arg = env_root && env_root[0] ? env_root : DEFAULT_ROOT;
    root = mr_oci_checked_root(root_arg, &e);
    if (!root)
        return report(&e);
    if (log_target.debug) {
        struct mr_buf line = {0};

        mr_buf_puts(&line, verb);
        mr_buf_puts(&line, " ");
        for (int i = verb_at + 1; i < argc; i++)
            mr_buf_printf(&line, "%s%s", i > verb_at + 1 ? " " : "", argv[i]);
        if (line.p) {
            log_write("debug", line.p);
            oci_say("debug: ", line.p);
        }
        mr_buf_free(&line);
    }
    if (!strcmp(verb, "state")) {
        char *text = mr_oci_state(root, args.rest[0], 2, &e);

        if (text) {
            print_out(text);
            print_out("\n");
        }
        ret = text ? 0 : -1;
        free(text);
    } else if (!strcmp(verb, "start")) {
        ret = mr_oci_start(root, args.rest[0], &e);
    } else if (!strcmp(verb, "kill")) {
        ret = mr_oci_kill(root, args.rest[0], sig, opt(&args, "all") != NULL, &e);
    } else if (!strcmp(verb, "delete")) {
        ret = mr_oci_delete(root, args.rest[0], opt(&args, "force") != NULL, &e);
    } else if (!strcmp(verb, "list") || !strcmp(verb, "ps")) {
        char *text = !strcmp(verb, "list")
                         ? mr_oci_list_text(root, opt(&args, "quiet") != NULL, opt(&args, "format"), &e)
                         : mr_oci_ps_text(root, args.rest[0], opt(&args, "format"), args.rest + 1, args.n_rest - 1,
                                          &e);

        if (text)
            print_out(text);
        ret = text ? 0 : -1;
        free(text);
    } else {
        print_out(FEATURES);
        print_out("\n");
    }
    free(root);
    return ret < 0 ? report(&e) : 0;
}

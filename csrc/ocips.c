/*
 * ocips.c - `ps ID`'s default table without ps(1): the lines `ps -ef` prints for the
 * container's pids, as procps-ng 4.0 (Debian 12's) prints them, read from /proc here.
 * Starting ps, which then reads every process on the host, cost more than crun's whole
 * `ps` (issue 21); with ps arguments given, ociverbs.c still runs ps(1).
 *
 * The columns are procps's -f ones (uid_hack,pid,ppid,c,stime,tname,time,cmd), each as
 * its pr_* function in ps/output.c computes it, laid out by show_one_proc's rules: a
 * column that runs over its width pushes the next ones right, and they take back what
 * they can. ps's setlocale(LC_ALL, "") is the same environment's locale here: it decides
 * how CMD is escaped (UTF-8 or bytes) and STIME's month names.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>
#include <wctype.h>

#include "oci.h"

#define OUTBUF_SIZE (2 * 64 * 1024) /* ps's line buffer: no column is longer */
#define SPACE_AMOUNT 144            /* the most padding ps writes before a column */
#define NAME_MAX_LEN 33             /* pwcache's P_G_SZ: a longer user name shows as its number */

/* Up to size - 1 bytes of a /proc file; its length, or -1 if it cannot be read (gone). */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n = 0;

    if (fd < 0)
        return -1;
    while (n < size - 1) {
        ssize_t r = read(fd, buf + n, size - 1 - n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    return (ssize_t)n;
}

/* /proc/stat's btime, past the interrupt counts (no small buffer holds them). */
static unsigned long boot_time(void)
{
    FILE *f = fopen("/proc/stat", "re");
    char *line = NULL;
    size_t size = 0;
    unsigned long btime = 0;

    if (!f)
        return 0;
    while (getline(&line, &size, f) > 0)
        if (sscanf(line, "btime %lu", &btime) == 1)
            break;
    free(line);
    fclose(f);
    return btime;
}

/* ---------------------------------------------------------------- escaping */

/* library/escape.c's esc_all: control characters as '.', bytes past ASCII as '?' */
static void esc_all(unsigned char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s == 0x7f)
            *s = '.';
        else if (*s >= 0x80)
            *s = '?';
}

/* library/escape.c's escape_str, in place: what readproc does to comm and cmdline. In
 * UTF-8, control characters become '?' and, from a byte that starts no sequence on, esc_all. */
static void lib_escape(char *str, int utf8)
{
    unsigned char *s = (unsigned char *)str;
    int len = (int)strlen(str);

    if (!utf8) {
        esc_all(s);
        return;
    }
    for (int i = 0; i < len;) {
        int n = *s < 0x80 ? 1 : *s < 0xc2 ? -1 : *s < 0xe0 ? 2 : *s < 0xf0 ? 3 : *s < 0xf5 ? 4 : -1;

        if (n < 0 || i + n > len) {
            esc_all(s);
            return;
        }
        if (*s < 0x20 || *s == 0x7f)
            *s = '?';
        s += n;
        i += n;
    }
}

/* ps/output.c's escape_str: at most *cells screen cells of src into dst (as large as src),
 * what cannot be printed as '?'; *cells is left with what remains. Returns its bytes. */
static int out_escape(char *dst, const char *src, int *cells, int utf8)
{
    int my_cells = 0, my_bytes = 0, bufsize = OUTBUF_SIZE;

    *dst = '\0';
    if (*cells <= 0)
        return 0;
    if (utf8) {
        mbstate_t st;

        memset(&st, 0, sizeof(st));
        while (my_cells < *cells && my_bytes + 1 < bufsize) {
            wchar_t wc;
            int len = (int)mbrtowc(&wc, src, MB_CUR_MAX, &st);

            if (!len)
                break;
            if (len < 0) { /* not a sequence: one '?' for its first byte */
                memset(&st, 0, sizeof(st));
                dst[my_bytes++] = '?';
                src++;
                my_cells++;
            } else if (len == 1) {
                dst[my_bytes++] = isprint((unsigned char)*src) ? *src : '?';
                src++;
                my_cells++;
            } else if (!iswprint((wint_t)wc)) {
                dst[my_bytes++] = '?';
                src += len;
                my_cells++;
            } else {
                int width = wcwidth(wc);

                if (width > *cells - my_cells || len >= bufsize - (my_bytes + 1))
                    break;
                memcpy(dst + my_bytes, src, (size_t)len);
                src += len;
                my_bytes += len;
                if (width > 0)
                    my_cells += width;
            }
        }
    } else {
        if (bufsize > *cells + 1)
            bufsize = *cells + 1;
        for (; my_cells < *cells && my_bytes + 1 < bufsize && *src; src++, my_cells++) {
            unsigned char c = (unsigned char)*src;

            dst[my_bytes++] = (char)(c < 0x20 || c == 0x7f ? '.' : c >= 0x80 ? '?' : c);
        }
    }
    dst[my_bytes] = '\0';
    *cells -= my_cells;
    return my_bytes;
}

/* ---------------------------------------------------------------- columns */

struct ps_host {
    long hertz;
    unsigned long long boot_tics; /* uptime in ticks, as libproc2's pids reap takes it */
    unsigned long btime;          /* /proc/stat's boot time */
    time_t now;
    int utf8;
    char *drivers; /* /proc/tty/drivers */
};

/* UID: ps/output.c's do_pr_name for the effective uid's name, in 8 cells. */
static void uid_cell(char *out, size_t size, unsigned uid, int utf8)
{
    struct passwd *pw = getpwuid(uid);
    int cells = OUTBUF_SIZE, len;
    char name[NAME_MAX_LEN];

    if (!pw || strlen(pw->pw_name) >= NAME_MAX_LEN) {
        snprintf(out, size, "%u", uid);
        return;
    }
    strcpy(name, pw->pw_name);
    out_escape(out, name, &cells, utf8);
    len = OUTBUF_SIZE - cells;
    if (len <= 8)
        return;
    if ((unsigned char)out[7] < 127) { /* '+' only after a whole ASCII character */
        strcpy(out + 7, "+");
        return;
    }
    snprintf(out, size, "%u", uid);
}

/* dev_to_tty's checks: the name exists and is that device. */
static int is_device(const char *path, unsigned maj, unsigned min)
{
    struct stat st;

    return stat(path, &st) == 0 && major(st.st_rdev) == maj && minor(st.st_rdev) == min;
}

/* library/devname.c's driver_name: the device's name from /proc/tty/drivers. */
static int driver_name(char *buf, size_t size, const char *drivers, unsigned maj, unsigned min)
{
    const char *found = NULL, *p = drivers;
    int found_len = 0, devfs = 0;

    /* load_drivers builds its list front to back, so the last matching line wins */
    while (p && (p = strstr(p, " /dev/"))) {
        const char *name = p + 6, *end = strchr(name, ' ');
        unsigned major_number, first, last;
        int len, n;

        if (!end)
            break;
        len = (int)(end - name);
        p = end + strspn(end, " ");
        major_number = (unsigned)atoi(p);
        p += strspn(p, "0123456789");
        p += strspn(p, " ");
        n = sscanf(p, "%u-%u", &first, &last);
        if (n < 1)
            continue;
        if (n == 1)
            last = first;
        if (major_number == maj && first <= min && last >= min) {
            found = name;
            found_len = len;
            devfs = len >= 3 && !strncmp(name + len - 2, "%d", 2);
        }
    }
    if (!found)
        return 0;
    if (devfs)
        found_len -= 2;
    if (found_len > 15)
        found_len = 15;
    snprintf(buf, size, "/dev/%.*s%u", found_len, found, min);
    if (is_device(buf, maj, min))
        return 1;
    snprintf(buf, size, "/dev/%.*s/%u", found_len, found, min);
    if (is_device(buf, maj, min))
        return 1;
    if (devfs)
        return 0;
    snprintf(buf, size, "/dev/%.*s", found_len, found);
    return is_device(buf, maj, min);
}

/* library/devname.c's link_name: the file an fd of the process names, if it is the device. */
static int link_name(char *buf, size_t size, int pid, const char *fd, unsigned maj, unsigned min)
{
    char path[64];
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%d/%s", pid, fd);
    n = readlink(path, buf, size - 1);
    if (n <= 0 || (size_t)n >= size - 1)
        return 0;
    buf[n] = '\0';
    return is_device(buf, maj, min);
}

/* TTY: dev_to_tty(ABBREV_DEV) of stat's tty_nr, "?" for none. Of its guesses this leaves
 * out guess_name's table of legacy serial majors: /proc/tty/drivers names the rest. */
static void tty_cell(char *out, size_t size, const struct ps_host *host, int pid, unsigned dev)
{
    unsigned maj = major(dev), min = minor(dev);
    char name[128], *p = name;
    size_t i = 0;

    if (!dev || !(driver_name(name, sizeof(name), host->drivers, maj, min) ||
                  link_name(name, sizeof(name), pid, "fd/2", maj, min) ||
                  link_name(name, sizeof(name), pid, "fd/255", maj, min))) {
        snprintf(out, size, "?");
        return;
    }
    if (!strncmp(p, "/dev/", 5) && p[5])
        p += 5;
    for (; *p && i + 1 < size; p++)
        out[i++] = (unsigned char)*p <= ' ' || (unsigned char)*p > 126 ? '?' : *p;
    out[i] = '\0';
}

/* STIME: HH:MM today, MonDD this year, else the year (pr_stime). */
static void stime_cell(char *out, size_t size, const struct ps_host *host, unsigned long long start)
{
    time_t t = (time_t)(host->btime + start / (unsigned long long)host->hertz);
    struct tm now, then;

    out[0] = '\0';
    if (!localtime_r(&host->now, &now) || !localtime_r(&t, &then))
        return;
    if (!strftime(out, size, then.tm_year != now.tm_year ? "%Y" : then.tm_yday != now.tm_yday ? "%b%d" : "%H:%M",
                  &then))
        out[0] = '\0';
}

/* TIME: [DD-]HH:MM:SS of CPU time (pr_time). */
static void time_cell(char *out, size_t size, const struct ps_host *host, unsigned long long ticks)
{
    unsigned long t = (unsigned long)((double)ticks / (double)host->hertz);
    unsigned ss = t % 60, mm = t / 60 % 60, hh = t / 3600 % 24, dd = (unsigned)(t / 86400);

    if (dd)
        snprintf(out, size, "%u-%02u:%02u:%02u", dd, hh, mm, ss);
    else
        snprintf(out, size, "%02u:%02u:%02u", hh, mm, ss);
}

/* C: percent of CPU over the process's life, at most 99 (pr_c, with libproc2's TIME_ELAPSED). */
static unsigned c_value(const struct ps_host *host, unsigned long long ticks, unsigned long long start)
{
    double span = (double)(host->boot_tics - start), elapsed = span > 0 ? span / (double)host->hertz : 0;
    unsigned long long jiffies = (unsigned long long)(elapsed * (double)host->hertz);
    unsigned long long pcpu = jiffies ? ticks * 100ULL / jiffies : 0;

    return pcpu > 99 ? 99 : (unsigned)pcpu;
}

/* CMD before layout: the cmdline with its NULs (and line breaks) as spaces, or "[comm]"
 * (with " <defunct>" for a zombie) where it is empty, as readproc's fill_cmdline_cvt. */
static char *cmd_text(int pid, const char *comm, char state, int utf8)
{
    char path[64], *buf = malloc(OUTBUF_SIZE);
    ssize_t n;

    if (!buf)
        return NULL;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    n = read_small(path, buf, OUTBUF_SIZE);
    if (n > 0) {
        ssize_t i = n;

        while (i && buf[i - 1] == '\0') /* the trailing NULs end it */
            i--;
        while (i--)
            if (buf[i] == '\n' || buf[i] == '\0')
                buf[i] = ' ';
        if (buf[n - 1] == ' ')
            buf[n - 1] = '\0';
        lib_escape(buf, utf8);
    } else {
        char name[64];

        snprintf(name, sizeof(name), "%s", comm);
        lib_escape(name, utf8);
        snprintf(buf, OUTBUF_SIZE, "[%s]%s", name, state == 'Z' ? " <defunct>" : "");
    }
    if (!buf[0])
        strcpy(buf, "?");
    return buf;
}

/* ---------------------------------------------------------------- layout */

enum { UID, PID, PPID, C, STIME, TTY, TIME, CMD, N_COLUMNS };
enum just { LEFT, RIGHT, UNLIMITED };

static const char *const HEADS[N_COLUMNS] = {"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"};
static const enum just JUST[N_COLUMNS] = {LEFT, RIGHT, RIGHT, RIGHT, RIGHT, LEFT, RIGHT, UNLIMITED};

/* One line as show_one_proc writes it: cells[CMD] is the unescaped command (NULL for the
 * header), cut to what is left of active_cols. */
static int put_line(struct mr_buf *out, char *const *cells, const int *widths, long active_cols, int utf8)
{
    int correct = 0, actual = 0, dospace = 0;

    for (int c = 0; c < N_COLUMNS; c++) {
        const char *text = cells[c];
        char *cmd = NULL;
        int amount, leftpad = 0, space, tmpspace = 0;
        long max_rightward = widths[c];

        if (c == CMD) {
            tmpspace = correct - actual;
            if (tmpspace < 1) {
                tmpspace = dospace;
                max_rightward = active_cols - actual - tmpspace;
            } else {
                max_rightward = active_cols - (correct > actual ? correct : actual);
            }
            if (max_rightward < 0)
                max_rightward = 0;
            else if (max_rightward >= OUTBUF_SIZE)
                max_rightward = OUTBUF_SIZE - 1;
        }
        if (c == CMD && text) {
            int cells_left = (int)max_rightward;

            if (!(cmd = malloc(strlen(text) + 1)))
                return -1;
            out_escape(cmd, text, &cells_left, utf8);
            amount = (int)max_rightward - cells_left;
            text = cmd;
        } else {
            if (!text)
                text = HEADS[c];
            amount = (int)strlen(text);
        }
        if (JUST[c] == RIGHT && widths[c] > amount)
            leftpad = widths[c] - amount;
        if (JUST[c] == UNLIMITED && active_cols - actual - tmpspace < 1)
            amount = amount > 1 ? 1 : amount; /* "we (mostly) lose this column" */
        space = correct - actual + leftpad;
        if (space < 1)
            space = dospace;
        if (space > SPACE_AMOUNT)
            space = SPACE_AMOUNT;
        mr_buf_printf(out, "%*s", space, "");
        if (JUST[c] == UNLIMITED && active_cols - actual - tmpspace < 1)
            mr_buf_put(out, text, text[0] ? 1 : 0);
        else
            mr_buf_puts(out, text);
        free(cmd);
        actual += space + amount;
        correct += widths[c] + 1;
        dospace = 1;
    }
    mr_buf_puts(out, "\n");
    return 0;
}

/* The pid's line, or 0 with nothing written if it is gone (ps would not have seen it). */
static int put_process(struct mr_buf *out, const struct ps_host *host, int pid, const int *widths, long active_cols)
{
    char path[64], stat_buf[2048], status[4096], *p, *rparen, comm[64], state;
    char uid[64], pid_s[24], ppid_s[24], c_s[8], stime_s[64], tty[128], time_s[48], *cmd, *cells[N_COLUMNS];
    int ppid, tty_nr, ret;
    unsigned long long utime, stime, start;
    unsigned euid = 0;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (read_small(path, stat_buf, sizeof(stat_buf)) <= 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if (read_small(path, status, sizeof(status)) <= 0 || !(p = strstr(status, "\nUid:")) ||
        sscanf(p + 5, "%*u %u", &euid) != 1)
        return 0;
    if (!(p = strchr(stat_buf, '(')) || !(rparen = strrchr(p, ')')) || !rparen[1])
        return 0;
    snprintf(comm, sizeof(comm), "%.*s", (int)(rparen - p - 1), p + 1);
    if (sscanf(rparen + 2,
               "%c %d %*d %*d %d %*d %*u %*u %*u %*u %*u %llu %llu %*u %*u %*d %*d %*d %*d %llu",
               &state, &ppid, &tty_nr, &utime, &stime, &start) != 6)
        return 0;
    if (!(cmd = cmd_text(pid, comm, state, host->utf8)))
        return -1;
    uid_cell(uid, sizeof(uid), euid, host->utf8);
    snprintf(pid_s, sizeof(pid_s), "%d", pid);
    snprintf(ppid_s, sizeof(ppid_s), "%u", (unsigned)ppid);
    snprintf(c_s, sizeof(c_s), "%2u", c_value(host, utime + stime, start));
    stime_cell(stime_s, sizeof(stime_s), host, start);
    tty_cell(tty, sizeof(tty), host, pid, (unsigned)tty_nr);
    time_cell(time_s, sizeof(time_s), host, utime + stime);
    cells[UID] = uid, cells[PID] = pid_s, cells[PPID] = ppid_s, cells[C] = c_s;
    cells[STIME] = stime_s, cells[TTY] = tty, cells[TIME] = time_s, cells[CMD] = cmd;
    ret = put_line(out, cells, widths, active_cols, host->utf8);
    free(cmd);
    return ret;
}

/* ps's line width: unlimited but for COLUMNS, widened until the fixed columns fit
 * (global.c's set_screen_size for a stdout that is no terminal, check_header_width). */
static long active_columns(const int *widths)
{
    const char *columns = getenv("COLUMNS");
    long screen = OUTBUF_SIZE, total = 3, active = 0;

    if (columns && *columns) {
        char *end;
        long t = strtol(columns, &end, 0);

        if (!*end && t > 0 && t < OUTBUF_SIZE)
            screen = t;
    }
    for (int c = 0; c < CMD; c++)
        total += widths[c] + 1;
    for (long i = 1;; i++) {
        active = screen * i;
        if (active >= total || active >= OUTBUF_SIZE / 2)
            break;
    }
    return active;
}

int oci_ps_table(const struct oci_pids *pids, struct mr_buf *out, struct mr_oci_error *e)
{
    struct ps_host host = {.hertz = sysconf(_SC_CLK_TCK), .now = time(NULL)};
    char buf[4096];
    int widths[N_COLUMNS] = {8, 5, 5, 2, 5, 8, 8, 27}, pid_len = 5, ret = 0;
    locale_t loc, old;
    double uptime;

    if (host.hertz <= 0)
        host.hertz = 100;
    if (read_small("/proc/sys/kernel/pid_max", buf, 24) > 0) /* PID and PPID: as wide as pid_max */
        pid_len = (int)strcspn(buf, "\n");
    widths[PID] = pid_len > 3 ? pid_len : 3;
    widths[PPID] = pid_len > 4 ? pid_len : 4;
    if (read_small("/proc/uptime", buf, sizeof(buf)) > 0 && sscanf(buf, "%lf", &uptime) == 1)
        host.boot_tics = (unsigned long long)(uptime * (double)host.hertz);
    host.btime = boot_time();
    if (read_small("/proc/tty/drivers", buf, sizeof(buf)) > 0)
        host.drivers = buf;
    /* ps's setlocale(LC_ALL, ""), for this thread alone: the caller may be Python's */
    if (!(loc = newlocale(LC_ALL_MASK, "", (locale_t)0)) && !(loc = newlocale(LC_ALL_MASK, "C", (locale_t)0)))
        return oci_fail_os(e, NULL, errno);
    old = uselocale(loc);
    host.utf8 = !strcasecmp(nl_langinfo(CODESET), "UTF-8") && MB_CUR_MAX > 1;
    {
        char *header[N_COLUMNS] = {NULL};
        long active_cols = active_columns(widths);

        ret = put_line(out, header, widths, active_cols, host.utf8);
        for (size_t i = 0; i < pids->n && !ret; i++)
            ret = put_process(out, &host, (int)pids->v[i], widths, active_cols);
    }
    uselocale(old);
    freelocale(loc);
    if (ret < 0 || out->failed)
        return oci_fail_os(e, NULL, ENOMEM);
    return 0;
}

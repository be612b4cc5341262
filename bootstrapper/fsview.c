/* The read-only view of fsview.py, in C: the same arguments, steps, messages and exit
 * statuses, without starting an interpreter before the build's own (about 12 ms of CPU
 * a backend call, on a machine where that is a fifth of a small package's build).
 *
 *     fsview [--writable DIR ...] --uid U --gid G -- CMD ...
 *
 * Run as root of a fresh user and mount namespace (unshare --map-root-user --mount):
 * bind-mounts each writable directory onto itself, remounts every other mount read-only
 * (/proc and /dev excepted), enters a nested user and mount namespace as U/G, which locks
 * the read-only flags, and executes CMD. bootstrapper compiles it when a C compiler is
 * there, and uses fsview.py otherwise (see isolation.py). */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#define SETUP_FAILED 125
#define MAX_WRITABLE 64
#define MAX_MOUNTS 4096

struct mount_point {
    char *path;
    char *options;
};

static const char *writable[MAX_WRITABLE];
static size_t n_writable;
static struct mount_point mounts[MAX_MOUNTS];
static size_t n_mounts;

static int fail(const char *what, const char *path, int code) {
    fprintf(stderr, "bootstrapper: cannot make the build's read-only view: [Errno %d] %s%s%s: %s\n",
            code, what, path ? " " : "", path ? path : "", strerror(code));
    return SETUP_FAILED;
}

/* Whether path is root or below it. */
static int within(const char *path, const char *root) {
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (strncmp(path, root, n) != 0)
        return 0;
    return path[n] == '\0' || path[n] == '/' || (n == 1 && root[0] == '/');
}

static int within_any(const char *path, const char **roots, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (within(path, roots[i]))
            return 1;
    return 0;
}

/* Mount points in mountinfo escape space, tab, newline and backslash as \ooo. */
static void unescape(char *s) {
    char *out = s;
    while (*s) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 4;
        } else {
            *out++ = *s++;
        }
    }
    *out = '\0';
}

static int has_option(const char *options, const char *name) {
    size_t n = strlen(name);
    for (const char *p = options; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* Each mount point once, in the order first seen, with the options last seen. */
static int read_mounts(void) {
    FILE *info = fopen("/proc/self/mountinfo", "re");
    if (!info)
        return fail("open", "/proc/self/mountinfo", errno);
    char *line = NULL;
    size_t size = 0;
    while (getline(&line, &size, info) != -1) {
        char *fields[6];
        char *save = NULL, *p = line;
        int n = 0;
        for (; n < 6; n++, p = NULL) {
            fields[n] = strtok_r(p, " \n", &save);
            if (!fields[n])
                break;
        }
        if (n < 6)
            continue;
        unescape(fields[4]);
        size_t i = 0;
        while (i < n_mounts && strcmp(mounts[i].path, fields[4]) != 0)
            i++;
        if (i == n_mounts) {
            if (n_mounts == MAX_MOUNTS)
                break;
            mounts[n_mounts++].path = strdup(fields[4]);
        } else {
            free(mounts[i].options);
        }
        mounts[i].options = strdup(fields[5]);
    }
    free(line);
    fclose(info);
    return 0;
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    int code = errno;
    close(fd);
    errno = code;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

int main(int argc, char **argv) {
    static const char *untouched[] = {"/proc", "/dev"};
    static const struct {
        const char *name;
        unsigned long flag;
    } kept[] = {{"nosuid", MS_NOSUID},     {"nodev", MS_NODEV},         {"noexec", MS_NOEXEC},
                {"noatime", MS_NOATIME},   {"nodiratime", MS_NODIRATIME}, {"relatime", MS_RELATIME}};
    long uid = -1, gid = -1;
    int split = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            split = i;
            break;
        }
        if (i + 1 >= argc)
            break;
        if (strcmp(argv[i], "--writable") == 0 && n_writable < MAX_WRITABLE) {
            char *real = realpath(argv[i + 1], NULL);
            writable[n_writable++] = real ? real : argv[i + 1];
        } else if (strcmp(argv[i], "--uid") == 0) {
            uid = strtol(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--gid") == 0) {
            gid = strtol(argv[i + 1], NULL, 10);
        } else {
            break;
        }
        i++;
    }
    if (split < 0 || split + 1 >= argc) {
        fprintf(stderr, "usage: fsview [--writable DIR ...] --uid U --gid G -- CMD ...\n");
        return 2;
    }
    for (size_t i = 0; i < n_writable; i++)
        if (mount(writable[i], writable[i], NULL, MS_BIND | MS_REC, NULL) != 0)
            return fail("mount", writable[i], errno);
    int status = read_mounts();
    if (status)
        return status;
    char notes[8192] = "";
    for (size_t i = 0; i < n_mounts; i++) {
        const char *point = mounts[i].path, *options = mounts[i].options;
        if (within_any(point, untouched, 2) || within_any(point, writable, n_writable) ||
            has_option(options, "ro"))
            continue;
        unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
        for (size_t k = 0; k < sizeof kept / sizeof kept[0]; k++)
            if (has_option(options, kept[k].name))
                flags |= kept[k].flag;
        if (mount(NULL, point, NULL, flags, NULL) != 0) {
            int code = errno;
            /* A mount this user cannot even reach (another user's) is not writable by the
             * build either; any other failure on the root is the end of the view. */
            if (strcmp(point, "/") == 0 || (code != EACCES && code != ENOENT && code != EPERM))
                return fail("mount", point, code);
            size_t used = strlen(notes);
            snprintf(notes + used, sizeof notes - used,
                     "bootstrapper: read-only view: %s stays as it is ([Errno %d] mount %s: %s)\n",
                     point, code, point, strerror(code));
        }
    }
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
        return fail("unshare", NULL, errno);
    char map[64];
    if (write_file("/proc/self/setgroups", "deny") != 0)
        return fail("write", "/proc/self/setgroups", errno);
    snprintf(map, sizeof map, "%ld 0 1", uid);
    if (write_file("/proc/self/uid_map", map) != 0)
        return fail("write", "/proc/self/uid_map", errno);
    snprintf(map, sizeof map, "%ld 0 1", gid);
    if (write_file("/proc/self/gid_map", map) != 0)
        return fail("write", "/proc/self/gid_map", errno);
    fputs(notes, stderr);
    /* The working directory still refers to the mount it was entered on (now read-only):
     * enter it again by name, through the writable bind mount where there is one. */
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd) || chdir(cwd) != 0) {
        int code = errno;
        fprintf(stderr, "bootstrapper: cannot enter the working directory again: [Errno %d] %s\n",
                code, strerror(code));
        return SETUP_FAILED;
    }
    execvp(argv[split + 1], argv + split + 1);
    int code = errno;
    fprintf(stderr, "bootstrapper: cannot run %s: [Errno %d] %s\n", argv[split + 1], code,
            strerror(code));
    return 127;
}

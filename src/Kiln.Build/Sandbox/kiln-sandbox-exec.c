/* kiln-sandbox-exec: the one program kiln starts for a sandbox, from the thread that has made its namespaces (the pid
 * namespace among them) and built its root (Sandbox/SandboxSetup.cs). It is the pid namespace's PID 1: it dies with that
 * thread, mounts /proc, enters the root and its working directory, opens the output files and execs the command, which
 * so becomes PID 1 (or, with --init, forks it and waits as the namespace's init).
 *
 *   kiln-sandbox-exec [--parent PID] [--proc DIR] [--root DIR [--wd DIR]] [--stdout FILE --stderr FILE] [--init yes]
 *                     -- PROGRAM ARG...
 *
 * --parent  exit at once unless PID (as the host's /proc numbers it) is still the parent: it may have died before the
 *           death signal was set
 * --proc    mount a new proc at DIR (a host path, before entering the root)
 * --root    chroot into DIR, then change to --wd (default /) and set PWD to it
 * --stdout, --stderr  open these files (inside the root) as stdout and stderr, with stdin /dev/null
 * --init    fork PROGRAM and wait for it (reaping orphans), rather than become it: for a PROGRAM that changes its user,
 *           since a change of credentials clears the death signal, and PID 1 must keep it; and for a PROGRAM run in the
 *           place of a shell, which would have been its PID 1
 *
 * Exit status: PROGRAM's (as PID 1, or as the init's exit status: 128 + the signal that killed PROGRAM). 125 when the
 * sandbox could not be entered, 126 when PROGRAM could not be run, 127 when it was not found.
 *
 * One program instead of setpriv(1) (the death signal), unshare(1) (/proc and the root) and a shell (the working
 * directory and the output files): their start-up cost about 2 ms of each build step and test command. A C program:
 * the runtime kiln is written for cannot fork safely. Built static, with no library but libc, by Kiln.Build.csproj:
 * against musl where it is installed, whose start-up asks nothing of the CPU. glibc's start-up reads the CPU's cache
 * sizes through about fifty CPUID instructions, each a trap to the hypervisor in a virtual machine (11 us each on the
 * machine this was measured on: a static glibc program takes 0.6-1.0 ms to start and end there, a musl one 0.1 ms). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void fail(int status, const char *what, const char *arg)
{
    int e = errno;
    fprintf(stderr, "kiln-sandbox-exec: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(e));
    _exit(status);
}

static void usage(const char *message, const char *arg)
{
    fprintf(stderr, "kiln-sandbox-exec: %s%s\n", message, arg ? arg : "");
    _exit(125);
}

static void open_as(const char *path, int flags, int fd)
{
    int opened = open(path, flags | O_CLOEXEC, 0644);
    if (opened < 0 || dup2(opened, fd) < 0)
        fail(125, "cannot open", path);
    close(opened);
}

/* The parent's pid as the host numbers it: /proc is still the host's here (this process's own pids start at 1). */
static long host_parent(void)
{
    char stat[512];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail(125, "cannot open", "/proc/self/stat");
    ssize_t n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0)
        fail(125, "cannot read", "/proc/self/stat");
    stat[n] = 0;
    /* "PID (COMM) STATE PPID ...": COMM may hold anything, the last ')' ends it. */
    char *end = strrchr(stat, ')');
    long ppid;
    if (end == NULL || sscanf(end + 1, " %*c %ld", &ppid) != 1)
        usage("cannot read the parent's pid from /proc/self/stat", NULL);
    return ppid;
}

/* execve, and for a file the kernel cannot run (no "#!" line) the shell on it, as the shell itself and glibc's execvp do. */
static void exec_file(const char *path, char **argv)
{
    execv(path, argv);
    if (errno != ENOEXEC)
        return;
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    char **script = calloc((size_t)argc + 2, sizeof *script);
    if (script == NULL)
        return;
    script[0] = "/bin/sh";
    script[1] = (char *)path;
    memcpy(script + 2, argv + 1, (size_t)argc * sizeof *argv); /* argv[1..argc-1] and its NULL */
    execv("/bin/sh", script);
    free(script);
    errno = ENOEXEC;
}

/* PROGRAM as execvp(3) finds it: a name with a slash as it is, else the first directory of PATH (default /bin:/usr/bin)
 * holding a file that runs; a file found but not runnable is reported (EACCES) if none runs. The C library's own
 * execvp is not used: libraries differ in the script fallback and the default PATH, and this one is static. */
static void exec_program(char **argv)
{
    const char *name = argv[0];
    if (strchr(name, '/') != NULL) {
        exec_file(name, argv);
        return;
    }
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/bin:/usr/bin";
    size_t name_length = strlen(name);
    int denied = 0;
    for (const char *dir = path;; dir++) {
        const char *end = strchrnul(dir, ':');
        size_t dir_length = (size_t)(end - dir);
        char *candidate = malloc(dir_length + name_length + 2);
        if (candidate == NULL)
            return;
        /* An empty entry is the working directory. */
        memcpy(candidate, dir, dir_length);
        size_t at = dir_length;
        if (dir_length > 0)
            candidate[at++] = '/';
        memcpy(candidate + at, name, name_length + 1);
        exec_file(candidate, argv);
        free(candidate);
        if (errno == EACCES)
            denied = 1;
        else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV && errno != ETIMEDOUT)
            return;
        if (*end == 0)
            break;
        dir = end;
    }
    errno = denied ? EACCES : ENOENT;
}

int main(int argc, char **argv)
{
    const char *proc = NULL, *root = NULL, *wd = "/", *out = NULL, *err = NULL, *init = NULL;
    long parent = 0;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
        const char *option = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        const char **target = !strcmp(option, "--proc") ? &proc
            : !strcmp(option, "--root") ? &root
            : !strcmp(option, "--wd") ? &wd
            : !strcmp(option, "--stdout") ? &out
            : !strcmp(option, "--stderr") ? &err
            : !strcmp(option, "--init") ? &init
            : NULL;
        if (target == NULL && strcmp(option, "--parent") != 0)
            usage("unknown option ", option);
        if (value == NULL)
            usage("a value is needed after ", option);
        if (target != NULL)
            *target = value;
        else
            parent = strtol(value, NULL, 10);
    }
    if (i + 1 >= argc)
        usage("no program to run", NULL);
    if ((out == NULL) != (err == NULL))
        usage("--stdout and --stderr go together", NULL);
    char **command = argv + i + 1;

    if (getpid() != 1)
        usage("not the first process of a new pid namespace (kiln makes it)", NULL);
    /* PID 1 of the namespace dies with kiln's thread; every other process of the namespace dies with PID 1. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        fail(125, "cannot set the parent-death signal", NULL);
    if (parent != 0 && host_parent() != parent)
        _exit(125); /* the parent died before the death signal was set */
    if (proc != NULL && mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        fail(125, "cannot mount proc on", proc);
    if (root != NULL) {
        if (chroot(root) != 0)
            fail(125, "cannot enter the root", root);
        if (chdir(wd) != 0)
            fail(125, "cannot enter the working directory", wd);
        if (setenv("PWD", wd, 1) != 0)
            fail(125, "cannot set PWD", NULL);
    }
    if (out != NULL) {
        open_as(out, O_WRONLY | O_CREAT | O_TRUNC, STDOUT_FILENO);
        open_as(err, O_WRONLY | O_CREAT | O_TRUNC, STDERR_FILENO);
        open_as("/dev/null", O_RDONLY, STDIN_FILENO);
    }
    if (init != NULL) {
        pid_t program = fork();
        if (program < 0)
            fail(125, "cannot fork", NULL);
        if (program > 0) {
            /* As an init: reap whatever ends, until PROGRAM does; then the namespace goes with this process. */
            int status;
            pid_t done;
            while ((done = waitpid(-1, &status, 0)) != program) {
                if (done < 0 && errno != EINTR)
                    fail(125, "cannot wait for", command[0]);
            }
            _exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
        }
    }
    exec_program(command);
    fail(errno == ENOENT ? 127 : 126, "cannot run", command[0]);
}

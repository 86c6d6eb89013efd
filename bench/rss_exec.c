/* rss_exec REPORT COMMAND [ARGS...]: run COMMAND as a child of this small
 * process and write "peak_rss_kib user_s system_s wall_s pid" to REPORT, then
 * exit as COMMAND did (its exit code, or its signal again).
 *
 * Why: Linux keeps a process's peak RSS across exec (ru_maxrss is the
 * largest of the address spaces it ever had), and a child forked or vforked
 * from the benchmark driver starts with the driver's pages counted. A
 * Python driver of about 15 MiB therefore floored every peak RSS it read
 * from wait4 at its own size: a program of 9 MiB measured 15. Forked from
 * this process instead, the child starts from a few hundred KiB. Built by
 * bench/common.py (rss_exec_path) with the C compiler on PATH. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: rss_exec REPORT COMMAND [ARGS...]\n");
        return 126;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("rss_exec: fork");
        return 126;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror("rss_exec: exec");
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    FILE *f = fopen(argv[1], "w");
    if (f) {
        fprintf(f, "%ld %.6f %.6f %.9f %ld\n", ru.ru_maxrss, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
                ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
                (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, (long)pid);
        fclose(f);
    }
    if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        raise(WTERMSIG(status));
        return 128 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}

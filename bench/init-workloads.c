/* Workloads for bench/init.sh, compiled by it into a temp dir.
 *
 *   orphans N            (run as the main child of an init that is PID 1)
 *       creates N orphans that all block on one pipe, releases them at once and
 *       measures how long until init has reaped them all; prints orphans/s.
 *   sigchild             replies with one byte on stdout per SIGUSR1 it gets.
 *   sigdriver K CMD...   runs CMD (an init running `sigchild`), sends SIGUSR1 to
 *                        CMD's process K times, each time waiting for the reply;
 *                        prints the median and 99th percentile round trip in µs.
 *   startloop N CMD...   runs CMD N times; prints the mean wall time per run in µs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Number of entries in init's (PID 1's) children list. */
static int init_children(void) {
    static char buf[1 << 20];
    FILE *f = fopen("/proc/1/task/1/children", "r");
    if (!f) die("/proc/1/task/1/children");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    int count = 0;
    for (size_t i = 0; i < n; i++) count += buf[i] == ' ';
    return count;
}

static int orphans(int n) {
    if (getppid() != 1) {
        fprintf(stderr, "orphans: must run under an init that is PID 1\n");
        return 1;
    }
    int p[2];
    if (pipe(p)) die("pipe");
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            if (fork() == 0) {
                char c;
                close(p[1]);
                while (read(p[0], &c, 1) < 0 && errno == EINTR) {}
                _exit(0);
            }
            _exit(0);
        }
        waitpid(pid, NULL, 0);
    }
    /* All N are alive, children of init; release them together. */
    while (init_children() < n + 1) usleep(1000);
    double start = now_us();
    close(p[1]);
    while (init_children() > 1) usleep(200);
    double elapsed = now_us() - start;
    printf("%.0f\n", n / (elapsed / 1e6));
    return 0;
}

static int sigchild(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (write(1, "r", 1) != 1) return 1;
    for (;;) {
        if (sigwaitinfo(&set, NULL) == SIGUSR1 && write(1, "x", 1) != 1) return 1;
    }
}

static pid_t spawn_with_stdout(char **argv, int *out) {
    int p[2];
    if (pipe(p)) die("pipe");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    *out = p[0];
    return pid;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int sigdriver(int k, char **argv) {
    int out;
    pid_t pid = spawn_with_stdout(argv, &out);
    char c;
    if (read(out, &c, 1) != 1 || c != 'r') die("sigchild did not start");
    double *lat = calloc(k, sizeof *lat);
    for (int i = 0; i < k; i++) {
        double start = now_us();
        kill(pid, SIGUSR1);
        if (read(out, &c, 1) != 1) die("reply");
        lat[i] = now_us() - start;
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    qsort(lat, k, sizeof *lat, cmp_double);
    printf("%.1f %.1f\n", lat[k / 2], lat[k * 99 / 100]);
    return 0;
}

static int startloop(int n, char **argv) {
    double start = now_us();
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            execvp(argv[0], argv);
            _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "startloop: %s failed\n", argv[0]);
            return 1;
        }
    }
    printf("%.1f\n", (now_us() - start) / n);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "orphans")) return orphans(atoi(argv[2]));
    if (argc >= 2 && !strcmp(argv[1], "sigchild")) return sigchild();
    if (argc >= 4 && !strcmp(argv[1], "sigdriver")) return sigdriver(atoi(argv[2]), argv + 3);
    if (argc >= 4 && !strcmp(argv[1], "startloop")) return startloop(atoi(argv[2]), argv + 3);
    fprintf(stderr, "usage: see the comment at the top of init-workloads.c\n");
    return 2;
}

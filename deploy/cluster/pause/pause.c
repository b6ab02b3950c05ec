/* The pod sandbox's process for `make cluster-test` (containerd's sandbox_image): it holds the
 * pod's namespaces, reaps orphaned children, and exits on SIGINT/SIGTERM. The public pause
 * image cannot be pulled here, so deploy/cluster/cluster.sh builds this one (static, FROM
 * scratch). Same behaviour as Kubernetes' build/pause/linux/pause.c. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { _exit(0); }

static void reap(int sig) {
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction on_stop = {.sa_handler = stop};
  struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  if (getpid() != 1) {
    return 1; /* only meaningful as a container's first process */
  }
  if (sigaction(SIGINT, &on_stop, NULL) < 0 || sigaction(SIGTERM, &on_stop, NULL) < 0 ||
      sigaction(SIGCHLD, &on_child, NULL) < 0) {
    return 2;
  }
  for (;;) {
    pause();
  }
}

/* The node's pod-sandbox ("pause") process, built by devcluster/images.py because
 * registry.k8s.io cannot be reached: it holds the pod's namespaces open, reaps the
 * children it inherits, and exits on SIGTERM or SIGINT. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction on_quit = {.sa_handler = quit};
  struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
  sigaction(SIGTERM, &on_quit, NULL);
  sigaction(SIGINT, &on_quit, NULL);
  sigaction(SIGCHLD, &on_child, NULL);
  for (;;) pause();
}

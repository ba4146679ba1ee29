# Sourced by integration tests that mount (a small tmpfs, a read-only bind).

# mount_namespace: sets MOUNT_NS to a command prefix that runs its command in
# a private mount namespace (mounts made there vanish with it); returns 1 if
# this system allows none. unshare -m makes / private first, which fails in
# a chroot whose root is not a mount point (a debootstrap check); there, if
# no mount is shared with another namespace (no "shared:" in mountinfo),
# nothing mounted can propagate out, so the propagation is left unchanged.
mount_namespace() {
  if unshare -m true 2>/dev/null; then MOUNT_NS=(unshare -m)
  elif ! grep -q ' shared:' /proc/self/mountinfo && unshare -m --propagation unchanged true 2>/dev/null; then
    MOUNT_NS=(unshare -m --propagation unchanged)
  elif unshare -rm true 2>/dev/null; then MOUNT_NS=(unshare -rm)
  else return 1
  fi
}

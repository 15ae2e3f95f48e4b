package kernel

// capSysChroot is CAP_SYS_CHROOT.
const capSysChroot = 18

// sysChroot changes the root directory of the caller's filesystem context
// (shared with its CLONE_FS threads, copied by fork): EPERM without
// CAP_SYS_CHROOT, after the lookup's errors (as Linux).
func sysChroot(t *Task, a *sysArgs) (uint64, error) {
	p, err := t.copyInPath(a[0])
	if err != nil {
		return 0, err
	}
	return 0, t.tg.fs.Chroot(t.fsOwner().Creds, nil, p, t.creds.capable(capSysChroot))
}

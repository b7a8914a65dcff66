package devstack

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// EnvBin names the environment variable that points at the folder where
// scripts/setup.sh puts the programs. It overrides ~/.cache/reins/bin.
const EnvBin = "REINS_BIN"

// setupHint ends every error about a missing program.
const setupHint = `run scripts/setup.sh (it builds them into ~/.cache/reins/bin; ` +
	`eval "$(scripts/setup.sh)" also puts that folder on PATH), or set ` + EnvBin + ` to the folder that holds them`

// binDirs lists, in order, the folders searched after PATH: $REINS_BIN, then
// the user cache folder's reins/bin (~/.cache/reins/bin, or
// $XDG_CACHE_HOME/reins/bin, as scripts/setup.sh uses).
func binDirs() []string {
	var dirs []string
	if d := os.Getenv(EnvBin); d != "" {
		dirs = append(dirs, d)
	}
	if cache, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, filepath.Join(cache, "reins", "bin"))
	}
	return dirs
}

// FindBinary returns the path of the program name: a program on PATH is used
// as it is; otherwise it is looked for in $REINS_BIN and then in
// ~/.cache/reins/bin. The error lists where it looked and says to run
// scripts/setup.sh.
func FindBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	searched := []string{"PATH"}
	for _, dir := range binDirs() {
		p := filepath.Join(dir, name)
		if isExecutable(p) {
			return p, nil
		}
		searched = append(searched, dir)
	}
	return "", fmt.Errorf("find program %q: not on %v; %s", name, searched, setupHint)
}

// KwokStagesDir returns the folder that holds kwok's stage configurations (one
// YAML file per stage), which scripts/setup.sh copies next to the programs:
// $REINS_BIN/../kwok-stages, or ~/.cache/reins/kwok-stages.
func KwokStagesDir() (string, error) {
	var searched []string
	for _, dir := range binDirs() {
		stages := filepath.Join(filepath.Dir(filepath.Clean(dir)), "kwok-stages")
		yamls, _ := filepath.Glob(filepath.Join(stages, "*.yaml"))
		if len(yamls) > 0 {
			return stages, nil
		}
		searched = append(searched, stages)
	}
	if len(searched) == 0 {
		return "", errors.New("find kwok stages: neither " + EnvBin + " nor a user cache folder is set; " + setupHint)
	}
	return "", fmt.Errorf("find kwok stages: no *.yaml in %v; %s", searched, setupHint)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

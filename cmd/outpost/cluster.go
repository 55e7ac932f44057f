package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/outpost-edge/outpost/cluster"
)

// adminFlags are the flags of the commands that call the admin API.
type adminFlags struct {
	admin, tokenFile string
	json             bool
}

func newAdminFlags(name string) (*flag.FlagSet, *adminFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	a := &adminFlags{}
	fs.StringVar(&a.admin, "admin", envOr("OUTPOST_ADMIN", "127.0.0.1:9090"), "admin API address")
	fs.StringVar(&a.tokenFile, "token-file", "", "file holding the admin bearer token (default: $OUTPOST_ADMIN_TOKEN, else the node's generated one)")
	fs.BoolVar(&a.json, "json", false, "print the API's JSON answer")
	return fs, a
}

// clusterCmd runs "outpost cluster status".
func clusterCmd(out io.Writer, args []string) error {
	if len(args) == 0 || args[0] != "status" {
		return errors.New("usage: outpost cluster status [--admin ADDR] [--token-file F] [--json]")
	}
	fs, a := newAdminFlags("cluster status")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	answer, err := adminCall(a.admin, a.tokenFile, "GET", "/cluster", "", nil)
	if err != nil || a.json {
		return printAnswer(out, "cluster status", answer, err)
	}
	var st cluster.Status
	if err := json.Unmarshal(answer, &st); err != nil {
		return fmt.Errorf("cluster status: %w", err)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSITE\tROLE\tSTATE\tHEALTH\tCONFIG\tPURGE SEQ\tEDGE\tADMIN\tLAST SEEN")
	for _, m := range st.Members {
		state := "up"
		if !m.Up {
			state = "down"
		}
		cfg := strconv.FormatUint(m.ConfigVersion, 10)
		if m.ConfigError != "" {
			cfg += " (refused " + m.ConfigError + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s ago\n", m.Name, m.Site, m.Role, state, m.Health, cfg,
			m.PurgeSeq, strings.Join(m.Edge, ","), m.Admin, time.Since(m.Seen).Round(time.Millisecond))
	}
	return tw.Flush()
}

// configCmd runs "outpost config push FILE | history | rollback N".
func configCmd(out io.Writer, args []string) error {
	const usage = "usage: outpost config push FILE | history | rollback REVISION  [--admin ADDR] [--token-file F]"
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs, a := newAdminFlags("config " + args[0])
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var answer []byte
	var err error
	switch {
	case args[0] == "push" && fs.NArg() == 1:
		var data []byte
		if data, err = os.ReadFile(fs.Arg(0)); err != nil {
			return fmt.Errorf("config push: %w", err)
		}
		answer, err = adminCall(a.admin, a.tokenFile, "POST", "/cluster/config", "application/yaml", data)
	case args[0] == "history" && fs.NArg() == 0:
		answer, err = adminCall(a.admin, a.tokenFile, "GET", "/cluster/config/history", "", nil)
	case args[0] == "rollback" && fs.NArg() == 1:
		rev, perr := strconv.ParseUint(fs.Arg(0), 10, 64)
		if perr != nil || rev == 0 {
			return fmt.Errorf("config rollback: %q is not a revision", fs.Arg(0))
		}
		answer, err = adminCall(a.admin, a.tokenFile, "POST", "/cluster/config/rollback", "application/json",
			[]byte(fmt.Sprintf(`{"revision": %d}`, rev)))
	default:
		return errors.New(usage)
	}
	return printAnswer(out, "config "+args[0], answer, err)
}

// printAnswer prints an admin API answer, or the error holding it.
func printAnswer(out io.Writer, cmd string, answer []byte, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	_, err = out.Write(answer)
	return err
}

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v4"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/auth"
	"github.com/minecart/minecart/services/daemon"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/settlement"
	settleapi "github.com/minecart/minecart/services/settlement/api"
)

// `minecart accounts ...`: bindings of vehicles to owner accounts are
// records of the compacted accounts topic that the settlement stage reads
// in order; the API callers' credentials (owners' password hashes,
// operators' and partners' token hashes) records of the compacted
// credentials topic that the owner and redemption APIs follow
// (services/auth).

func accountsCommand(stdout io.Writer, stdin io.Reader) *ff.Command {
	var kf daemon.Kafka
	cmd := adminCommand("accounts", "bind vehicles to owner accounts, set owners' passwords, issue operator and partner tokens", &kf)
	var vehicle, owner string
	vehicleFlag := func(fs *flag.FlagSet) { fs.StringVar(&vehicle, "vehicle", "", "vehicle id") }
	sub(cmd, &kf, "bind", "credit a vehicle's points to an owner account from now on", func(fs *flag.FlagSet) {
		vehicleFlag(fs)
		fs.StringVar(&owner, "owner", "", "owner account")
	}, func(ctx context.Context, a *admin) error {
		if err := settleapi.BindVehicle(ctx, a.producer, a.serde, vehicle, owner, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "vehicle %s bound to owner %s\n", vehicle, owner)
		return nil
	})
	sub(cmd, &kf, "unbind", "remove a vehicle's binding: its credits are held until it is bound again", vehicleFlag, func(ctx context.Context, a *admin) error {
		if err := settleapi.UnbindVehicle(ctx, a.producer, vehicle); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "vehicle %s unbound\n", vehicle)
		return nil
	})
	sub(cmd, &kf, "list", "list the bindings", func(fs *flag.FlagSet) {
		fs.StringVar(&owner, "owner", "", "only the bindings of this owner account")
	}, func(ctx context.Context, a *admin) error {
		list, err := a.listBindings(ctx, owner)
		rows := make([][]any, len(list))
		for i, b := range list {
			rows[i] = []any{b.VehicleID, b.Owner, b.UpdatedAt.Format(time.RFC3339)}
		}
		return errors.Join(printTable(stdout, "VEHICLE OWNER UPDATED", rows), err)
	})
	var passwordFile, operator, partner string
	sub(cmd, &kf, "password", "set an owner's password (from --password-file or the first line of stdin); the owner's sessions end", func(fs *flag.FlagSet) {
		fs.StringVar(&owner, "owner", "", "owner account")
		fs.StringVar(&passwordFile, "password-file", "", "file whose first line is the password (default: stdin)")
	}, func(ctx context.Context, a *admin) error {
		pw, err := readPassword(passwordFile, stdin)
		if err != nil {
			return err
		}
		if _, err := auth.SetPassword(ctx, a.producer, a.serde, owner, pw, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password of owner %s set\n", owner)
		return nil
	})
	sub(cmd, &kf, "rotate", "generate a new password for an owner and print it once; the owner's sessions end", func(fs *flag.FlagSet) {
		fs.StringVar(&owner, "owner", "", "owner account")
	}, func(ctx context.Context, a *admin) error {
		pw := auth.NewSecret()
		if _, err := auth.SetPassword(ctx, a.producer, a.serde, owner, pw, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password of owner %s: %s   (shown once)\n", owner, pw)
		return nil
	})
	roleFlags := func(fs *flag.FlagSet) {
		fs.StringVar(&operator, "operator", "", "an operator's name")
		fs.StringVar(&partner, "partner", "", "a partner id")
	}
	sub(cmd, &kf, "token", "issue the bearer token of an operator (--operator) or a partner (--partner), printed once; it replaces the previous one", roleFlags,
		func(ctx context.Context, a *admin) error {
			role, id, err := tokenRole(operator, partner)
			if err != nil {
				return err
			}
			tok, err := auth.NewToken(ctx, a.producer, a.serde, role, id, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "token of %s: %s   (shown once; send it as Authorization: Bearer)\n", auth.Subject(role, id), tok)
			return nil
		})
	sub(cmd, &kf, "revoke", "remove the credential of an owner (--owner), an operator (--operator) or a partner (--partner)", func(fs *flag.FlagSet) {
		roleFlags(fs)
		fs.StringVar(&owner, "owner", "", "owner account")
	}, func(ctx context.Context, a *admin) error {
		role, id, err := tokenRole(operator, partner)
		switch {
		case owner != "" && (operator != "" || partner != ""):
			return errors.New("name one of --owner, --operator, --partner")
		case owner != "":
			role, id, err = auth.RoleOwner, owner, nil
		}
		if err != nil {
			return err
		}
		if err := auth.Remove(ctx, a.producer, role, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "credential %s removed\n", auth.Subject(role, id))
		return nil
	})
	var reason, sealPath, chDSN, report string
	var timeout time.Duration
	sub(cmd, &kf, "erase", "erase an owner (PIPL art. 47, GDPR art. 17): the ledger destroys the pseudonym keys of the account and its vehicles (kind 8 erasure entries), the vehicles are unbound, the credential removed, and ClickHouse rows naming them deleted", func(fs *flag.FlagSet) {
		fs.StringVar(&owner, "owner", "", "owner account to erase")
		fs.StringVar(&reason, "reason", "", "why, recorded in the erasure entries (no personal data; default: erasure requested by the owner)")
		fs.StringVar(&sealPath, "pseudonym-key", ".minecart/pseudonyms.key", "the ledger's pseudonym-sealing key file (minecart run: <data-dir>/pseudonyms.key)")
		fs.StringVar(&chDSN, "clickhouse-dsn", "", "ClickHouse DSN of a user that may ALTER TABLE ... DELETE (minecart run: the writer of <data-dir>/clickhouse/users.json); empty: ClickHouse is left alone")
		fs.DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the ledger to destroy the keys")
		fs.StringVar(&report, "report", "", "write the erasure's record (JSON: what was cleared, which topics were not reached and when they expire) to this file (0600)")
	}, func(ctx context.Context, a *admin) error {
		if owner == "" {
			return errors.New("--owner is required")
		}
		seal, err := pseudonym.LoadSealKey(sealPath)
		if err != nil {
			return err
		}
		return erase(ctx, a, eraseConfig{Owner: owner, Reason: reason, Seal: seal, ClickHouseDSN: chDSN, Timeout: timeout, Out: stdout, Report: report})
	})
	var requireGone bool
	sub(cmd, &kf, "erasure-check", "verify from the broker what an erasure's report says will expire: for each topic it could not reach, whether retention has deleted every record written before the erasure (log start offset at or past the end offset recorded then)", func(fs *flag.FlagSet) {
		fs.StringVar(&report, "report", "", "the erasure's report (accounts erase --report)")
		fs.BoolVar(&requireGone, "require-gone", false, "fail if any topic still holds records from before the erasure")
	}, func(ctx context.Context, a *admin) error {
		if report == "" {
			return errors.New("--report is required")
		}
		return erasureCheck(ctx, a, report, requireGone, stdout)
	})
	return cmd
}

// tokenRole is the role and id named by exactly one of --operator and
// --partner.
func tokenRole(operator, partner string) (avro.Role, string, error) {
	switch {
	case operator != "" && partner == "":
		return auth.RoleOperator, operator, nil
	case partner != "" && operator == "":
		return auth.RolePartner, partner, nil
	}
	return "", "", errors.New("name one of --operator, --partner")
}

// readPassword reads the first line of file, or of stdin when file is "".
func readPassword(file string, stdin io.Reader) (string, error) {
	r := stdin
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	}
	line, err := bufio.NewReader(io.LimitReader(r, auth.MaxPassword+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password given (--password-file or stdin)")
	}
	return line, nil
}

// listBindings returns the current bindings (of owner only, if not ""),
// sorted by vehicle id.
func (a *admin) listBindings(ctx context.Context, owner string) ([]settlement.Binding, error) {
	recs, err := readTable[avro.AccountBinding](ctx, a, pipelines.TopicAccounts, "binding")
	var out []settlement.Binding
	for i := range recs {
		if owner == "" || recs[i].Owner == owner {
			out = append(out, settlement.BindingFrom(&recs[i]))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VehicleID < out[j].VehicleID })
	return out, err
}

// readTable reads a compacted topic to its end and decodes its current
// records (what names them in errors); records that do not decode are
// skipped and reported.
func readTable[T any, R interface {
	*T
	schemas.Record
}](ctx context.Context, a *admin, topic, what string) ([]T, error) {
	t, err := a.table(ctx, topic)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	var (
		out  []T
		errs []error
	)
	t.Range(func(key string, value []byte) bool {
		if value == nil {
			return true
		}
		var v T
		if err := a.serde.Unmarshal(value, R(&v)); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", what, key, err))
			return true
		}
		out = append(out, v)
		return true
	})
	return out, errors.Join(errs...)
}

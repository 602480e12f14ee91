// Command avrogen writes schemas/avro/records_gen.go from schemas/*.avsc
// (go generate ./schemas/...): avrogen -o FILE DIR.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/minecart/minecart/schemas/internal/avrogen"
)

func main() {
	out := flag.String("o", "records_gen.go", "output file")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: avrogen -o FILE DIR")
		os.Exit(2)
	}
	src, err := avrogen.FromFS(os.DirFS(flag.Arg(0)))
	if err == nil {
		err = os.WriteFile(*out, src, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "avrogen:", err)
		os.Exit(1)
	}
}

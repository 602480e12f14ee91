package chserver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// engineGrants are all the engine's session may do, whoever the HTTP user
// is: ClickHouse's own access control then refuses, inside the engine,
// every source that reaches the host (READ/WRITE ON FILE, URL, S3, HDFS,
// REMOTE, MYSQL, ...; TABLE ENGINE ON File, URL, ...), dictionaries,
// SYSTEM, BACKUP, users and roles, introspection. The HTTP front narrows it
// further per user (guard.go); this is the floor under the front's checks.
const engineGrants = "SELECT, INSERT, ALTER TABLE, ALTER VIEW, CREATE TABLE, CREATE VIEW, " +
	"CREATE TEMPORARY TABLE, DROP TABLE, DROP VIEW, TRUNCATE, OPTIMIZE, SHOW TABLES, SHOW COLUMNS, " +
	"SHOW DATABASES"

// engineConstSettings may not be changed in the engine's session at all
// (settings constraints): they name files or switch on introspection.
var engineConstSettings = []string{"format_schema", "format_template_resultset", "format_template_row",
	"output_format_schema", "input_format_record_errors_file_path", "allow_introspection_functions",
	"into_outfile_create_parent_directories", "format_avro_schema_registry_url", "format_schema_source"}

// writeEngineConfig writes the chDB (clickhouse-local) configuration
// into dir and returns the main file's path: the session's user "default"
// with engineGrants, settings constraints and no access management.
func writeEngineConfig(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("engine config: %w", err)
	}
	var cons strings.Builder
	for _, s := range engineConstSettings {
		fmt.Fprintf(&cons, "<%s><const/></%s>", s, s)
	}
	users := `<clickhouse>
  <profiles><default><constraints>` + cons.String() + `</constraints></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>::1</ip><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
      <access_management>0</access_management>
      <named_collection_control>0</named_collection_control>
      <grants><query>GRANT ` + engineGrants + ` ON *.*</query></grants>
    </default>
  </users>
  <quotas><default></default></quotas>
</clickhouse>
`
	usersPath := filepath.Join(dir, "users.xml")
	main := `<clickhouse>
  <users_config>` + usersPath + `</users_config>
  <user_scripts_path>` + filepath.Join(dir, "no_user_scripts") + `/</user_scripts_path>
  <user_files_path>` + filepath.Join(dir, "no_user_files") + `/</user_files_path>
</clickhouse>
`
	mainPath := filepath.Join(dir, "config.xml")
	for path, body := range map[string]string{usersPath: users, mainPath: main} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			return "", fmt.Errorf("engine config: %w", err)
		}
	}
	return mainPath, nil
}

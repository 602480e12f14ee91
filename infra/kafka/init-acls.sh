#!/usr/bin/env bash
# Creates the SCRAM users and ACLs of the production cluster (docker-compose.yml runs it once).
# Services authenticate as "minecart" (full access to minecart.* topics and groups); each partner
# gets its own user that may read only the reward topics: the settled-credits topic, its own
# redemptions and campaigns topics and the ledger's blocks and entries (the book it verifies), and write only to
# the acknowledgements topic. The device registry (minecart.devices) is never readable by a partner. Telemetry (personal data: positions)
# is never readable by a partner. See docs/partners.md.
set -euo pipefail
BS=${BOOTSTRAP:-kafka:9093}
CFG=/etc/kafka/admin.properties
kc() { /opt/kafka/bin/kafka-configs.sh --bootstrap-server "$BS" --command-config "$CFG" "$@"; }
ka() { /opt/kafka/bin/kafka-acls.sh --bootstrap-server "$BS" --command-config "$CFG" "$@"; }

kc --alter --add-config "SCRAM-SHA-512=[password=${MINECART_KAFKA_PASSWORD}]" --entity-type users --entity-name minecart
ka --add --allow-principal User:minecart --operation All --topic minecart. --resource-pattern-type prefixed
# The stages' consumer groups and transactional ids (<stage>-<instance>) are named after the stage.
for stage in ingest scoring replaycheck ledger settlement sink; do
  ka --add --allow-principal User:minecart --operation All --group "$stage" --resource-pattern-type prefixed
  ka --add --allow-principal User:minecart --operation All --transactional-id "$stage" --resource-pattern-type prefixed
done
ka --add --allow-principal User:minecart --operation All --cluster
for p in ${MINECART_PARTNERS:-}; do
  user="partner-$p"
  pass_var="PARTNER_${p^^}_PASSWORD"
  kc --alter --add-config "SCRAM-SHA-512=[password=${!pass_var}]" --entity-type users --entity-name "$user"
  ka --add --allow-principal "User:$user" --operation Read --operation Describe --topic minecart.rewards.credits
  ka --add --allow-principal "User:$user" --operation Read --operation Describe --topic "minecart.partner.$p.redemptions"
  ka --add --allow-principal "User:$user" --operation Read --operation Describe --topic "minecart.partner.$p.campaigns"
  # The book the partner's node verifies and replicates (docs/ledger.md).
  ka --add --allow-principal "User:$user" --operation Read --operation Describe --topic minecart.ledger.blocks
  ka --add --allow-principal "User:$user" --operation Read --operation Describe --topic minecart.ledger.entries
  ka --add --allow-principal "User:$user" --operation Read --operation Describe --topic minecart.ledger.checkpoints
  ka --add --allow-principal "User:$user" --operation Write --operation Describe --topic minecart.partners.acks
  # Groups partner-<p>/...: the slash (never in a partner id) keeps partner "acme" out of partner "acme-2"'s groups.
  ka --add --allow-principal "User:$user" --operation Read --group "partner-$p/" --resource-pattern-type prefixed
done
# The read-only analyst (optional: set MINECART_ANALYST_PASSWORD): the analytic topics, never the device
# registry, raw telemetry or the changelogs; its own groups analyst/... (services/stack.AnalystACLs, the
# embedded broker's analyst; TestAnalystACLsInScript checks this list).
if [ -n "${MINECART_ANALYST_PASSWORD:-}" ]; then
  kc --alter --add-config "SCRAM-SHA-512=[password=${MINECART_ANALYST_PASSWORD}]" --entity-type users --entity-name analyst
  for t in minecart.telemetry.clean minecart.deadletter minecart.scores minecart.scoring.late minecart.ledger.blocks \
           minecart.ledger.entries minecart.ledger.checkpoints minecart.rewards.credits minecart.redemptions.status minecart.settlement.statements; do
    ka --add --allow-principal User:analyst --operation Read --operation Describe --topic "$t"
  done
  ka --add --allow-principal User:analyst --operation Read --group analyst/ --resource-pattern-type prefixed
fi

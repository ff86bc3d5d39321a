#!/bin/sh
# The ledger topic missing and not creatable (real Kafka): the cluster
# refuses CreateTopics, as its ACLs would (error 29, topic authorization
# failed; answered here by tcpfwd.py on scripts/kafka-dev's proxied
# listener).  kpoold says so once, naming the topic and the commands that
# make it or allow kpool to, and handles nothing meanwhile: the jobs wait in
# Kafka.  Once an operator makes the topic, every job is handled.
. "$(dirname "$0")/lib.sh"
require_tools
need_real
refuse_topics 29
N=20

plugins "$T/plugins"
BOOTSTRAP=$PROXY pool_conf "$T/kpool.conf" <<EOF2
[worker:acl]
topic = acl$R
handler = probe
record = $T/record
processes = 2
EOF2
start_kpoold "$T/kpool.conf" "$T/kpoold.log"
KP=$KPID
"$PYTHON3" -c "
for i in range($N): print('{\"eventId\":\"acl%d\"}' % i)" | "$KPOOL" -c "$T/kpool.conf" send "acl$R"
check "$N jobs sent" test $? -eq 0
said() { grep -q "error ledger=acl ledger topic kpool-acl$R.ledger: creating kpool-acl$R.ledger: .*uthoriz" "$T/kpoold.log"; }
check "kpoold says the cluster refused the ledger topic, naming it" wait_for 30 said
check "... with the command that creates it" \
	log_has "$T/kpoold.log" "kafka-topics.sh --bootstrap-server $PROXY --create --topic kpool-acl$R.ledger --partitions 1 --config cleanup.policy=compact,delete"
check "... and the ACL that lets kpool create it" \
	log_has "$T/kpoold.log" "kafka-acls.sh --bootstrap-server $PROXY --add --allow-principal User:KPOOL --operation Create"
check "... and that nothing is handled until it is there" \
	log_has "$T/kpoold.log" "no job of worker acl is handled until it is there (they wait in Kafka)"
# It asks again every 2 s: once it has been refused twice more, nothing has still been handled.
check "asked again, quietly" wait_for 30 at_least 3 lines_in "$T/held"
check "said once" test "$(grep -c "ledger topic kpool-acl$R.ledger: creating" "$T/kpoold.log")" = 1
check "no job handled meanwhile" test "$(lines_in "$T/record")" = 0
# The operator makes it.
"$top_builddir/tests/helpers/mktopic" "$REAL" 1 "kpool-acl$R.ledger"
check "the operator makes the ledger topic" test $? -eq 0
check "kpoold notices" wait_for 30 log_has "$T/kpoold.log" "ledger topic kpool-acl$R.ledger: 1 partition, reading from its start"
check "then every job is handled, none lost" wait_for 60 at_least $N lines_in "$T/record"
check "each once" test "$(cut -d' ' -f1 "$T/record" | sort -u | wc -l)" = $N
stop_kpoold "$KP"
check "kpoold stops with status 0" test $? -eq 0

/*
 * JavaWorker.java - scripts/bench's Java peer: a worker with kpool's guarantee,
 * as one writes it with kafka-clients, Jackson and sqlite-jdbc: per record,
 * parse the JSON, take its event id, skip it if the processed table has it,
 * else handle it (a no-op) and insert the id; one SQLite transaction per
 * poll(), and the poll's offsets committed only once that transaction has.
 * The consumer waits for data as kpool's does (fetch.max.wait.ms = 100).
 *
 * It writes what tests/bench/stamp.c writes (see there) to OUT, at every
 * 1000th job, at each latency sample ("lat-" event ids) and when stopped.
 *
 * usage: java -cp CLASSES:LIBS/* JavaWorker BOOTSTRAP GROUP OUT DB TOPIC...
 */
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class JavaWorker {
	static long count, first, last;
	static final List<long[]> lat = new ArrayList<>();

	static void write(String out) throws IOException {
		StringBuilder b = new StringBuilder();
		b.append(count).append(' ').append(first).append(' ').append(last).append('\n');
		for (long[] s : lat)
			b.append(s[0]).append(' ').append(s[1]).append('\n');
		Path tmp = Path.of(out + ".tmp");
		Files.writeString(tmp, b);
		Files.move(tmp, Path.of(out), StandardCopyOption.REPLACE_EXISTING,
			   StandardCopyOption.ATOMIC_MOVE);
	}

	public static void main(String[] args) throws Exception {
		String bootstrap = args[0], group = args[1], out = args[2], dbpath = args[3];
		List<String> topics = Arrays.asList(args).subList(4, args.length);
		Properties p = new Properties();
		p.put("bootstrap.servers", bootstrap);
		p.put("group.id", group);
		p.put("auto.offset.reset", "earliest");
		p.put("enable.auto.commit", "false");
		p.put("fetch.max.wait.ms", "100");
		p.put("key.deserializer", ByteArrayDeserializer.class.getName());
		p.put("value.deserializer", ByteArrayDeserializer.class.getName());
		ObjectMapper json = new ObjectMapper();
		Connection db = DriverManager.getConnection("jdbc:sqlite:" + dbpath);
		try (Statement st = db.createStatement()) {
			st.execute("PRAGMA journal_mode=WAL");
			st.execute("PRAGMA synchronous=NORMAL");
			st.execute("CREATE TABLE IF NOT EXISTS processed "
				   + "(event_id TEXT PRIMARY KEY, processed_at INTEGER)");
		}
		db.setAutoCommit(false);
		PreparedStatement seen = db.prepareStatement("SELECT 1 FROM processed WHERE event_id = ?");
		PreparedStatement done =
		    db.prepareStatement("INSERT INTO processed (event_id, processed_at) VALUES (?, ?)");
		KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p);
		Thread main = Thread.currentThread();
		Runtime.getRuntime().addShutdownHook(new Thread(() -> {
			c.wakeup();
			try {
				main.join(10000);
			} catch (InterruptedException e) {
			}
		}));
		c.subscribe(topics);
		try {
			while (true) {
				ConsumerRecords<byte[], byte[]> recs = c.poll(Duration.ofMillis(200));
				if (recs.isEmpty())
					continue;
				long before = count;
				boolean sampled = false;
				Map<TopicPartition, OffsetAndMetadata> ends = new HashMap<>();
				for (ConsumerRecord<byte[], byte[]> r : recs) {
					ends.put(new TopicPartition(r.topic(), r.partition()),
						 new OffsetAndMetadata(r.offset() + 1));
					long now = System.currentTimeMillis();
					String id = json.readTree(r.value()).get("eventId").asText();
					seen.setString(1, id);
					try (ResultSet rs = seen.executeQuery()) {
						if (rs.next())
							continue;
					}
					// the handler: a no-op that notes when it was called
					if (id.startsWith("lat-")) {
						lat.add(new long[] {r.timestamp(), now});
						sampled = true;
					} else if (id.startsWith("bench-")) {
						if (count++ == 0)
							first = now;
						last = now;
					}
					done.setString(1, id);
					done.setLong(2, now);
					done.executeUpdate();
				}
				db.commit();
				c.commitAsync(ends, null);
				if (sampled || count / 1000 != before / 1000)
					write(out);
			}
		} catch (WakeupException e) {
			// stopping
		} finally {
			write(out);
			c.close(Duration.ofSeconds(5));
			db.close();
		}
	}
}

// A small JDBC client the server tests compile and run against `fsql serve`.
// Usage: java -cp postgresql.jar:. JdbcSmoke <jdbc-url> <user> <password>
// Prints one "key=value" line per check; exits 1 on the first failure.
import java.sql.*;
import java.util.*;

public class JdbcSmoke {
    static void check(boolean ok, String what) {
        if (!ok) {
            System.out.println("FAILED " + what);
            System.exit(1);
        }
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        try (Connection c = DriverManager.getConnection(args[0], props)) {
            DatabaseMetaData md = c.getMetaData();
            System.out.println("product=" + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());

            List<String> tables = new ArrayList<>();
            try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
            }
            System.out.println("tables=" + String.join(",", tables));
            check(tables.contains("transactions"), "getTables lists transactions");

            List<String> cols = new ArrayList<>();
            try (ResultSet rs = md.getColumns(null, "public", "transactions", "%")) {
                while (rs.next()) cols.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME") + ":" + rs.getString("REMARKS"));
            }
            System.out.println("columns=" + String.join(",", cols));
            check(cols.contains("amount:float8:money spent"), "getColumns types and remarks");

            List<String> pk = new ArrayList<>();
            try (ResultSet rs = md.getPrimaryKeys(null, "public", "transactions")) {
                while (rs.next()) pk.add(rs.getString("COLUMN_NAME"));
            }
            System.out.println("pk=" + String.join(",", pk));
            check(pk.equals(List.of("customer_id")), "getPrimaryKeys");

            try (PreparedStatement ps = c.prepareStatement(
                    "SELECT name, amount FROM transactions WHERE customer_id = ? ORDER BY event_ts")) {
                for (int round = 0; round < 6; round++) {  // past prepareThreshold: server-side prepared
                    ps.setLong(1, 1L);
                    List<String> rows = new ArrayList<>();
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) rows.add(rs.getString(1) + "/" + rs.getDouble(2));
                    }
                    if (round == 0) System.out.println("prepared=" + String.join(",", rows));
                    check(rows.equals(List.of("a/10.5", "d/30.25")), "prepared statement round " + round);
                }
            }

            try (Statement st = c.createStatement();
                 ResultSet rs = st.executeQuery("SELECT count(*) AS n, sum(amount) AS total FROM transactions")) {
                check(rs.next(), "aggregate row");
                System.out.println("count=" + rs.getLong("n") + " total=" + rs.getDouble("total"));
                check(rs.getLong("n") == 4, "count");
            }

            if (args.length > 3) {  // an FSQL statement given by the test
                try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(args[3])) {
                    ResultSetMetaData rmd = rs.getMetaData();
                    int n = 0;
                    while (rs.next()) n++;
                    System.out.println("fsql_columns=" + rmd.getColumnCount() + " fsql_rows=" + n);
                    check(n > 0, "FSQL statement returns rows");
                }
            }

            try (Statement st = c.createStatement()) {
                st.executeQuery("SELECT nope FROM transactions");
                check(false, "error expected");
            } catch (SQLException e) {
                System.out.println("error_state=" + e.getSQLState());
            }
            System.out.println("OK");
        }
    }
}

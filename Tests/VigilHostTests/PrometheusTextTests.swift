import Testing
@testable import VigilHost

/// The exposition format as vigil writes it, and how a scrape's request head is read.
@Suite("Prometheus text")
struct PrometheusTextTests {
    @Test func familiesHaveHelpAndTypeAndLabelValuesAreEscaped() {
        var p = PrometheusText()
        p.family("vigil_child_restarts_total", .counter, "Restarts \\ of a child\nsecond line.")
        p.sample("vigil_child_restarts_total", ["child": "a\"b\\c\nd", "supervisor": "s"], 3)
        p.family("vigil_uptime_seconds", .gauge, "Up.")
        p.sample("vigil_uptime_seconds", 1.5)
        #expect(p.text == """
        # HELP vigil_child_restarts_total Restarts \\\\ of a child\\nsecond line.
        # TYPE vigil_child_restarts_total counter
        vigil_child_restarts_total{child="a\\"b\\\\c\\nd",supervisor="s"} 3
        # HELP vigil_uptime_seconds Up.
        # TYPE vigil_uptime_seconds gauge
        vigil_uptime_seconds 1.5

        """)
    }

    @Test func numbersAreWrittenAsPrometheusReadsThem() {
        #expect(PrometheusText.format(0) == "0")
        #expect(PrometheusText.format(9_302_016) == "9302016")
        #expect(PrometheusText.format(0.25) == "0.25")
        #expect(PrometheusText.format(.nan) == "NaN")
        #expect(PrometheusText.format(.infinity) == "+Inf")
        #expect(PrometheusText.isValidName("vigil_child_state") && !PrometheusText.isValidName("vigil-child") && !PrometheusText.isValidName("9x"))
    }

    @Test func aRequestHeadIsCompleteOnlyAtItsEmptyLine() {
        #expect(MetricsConnection.requestLine(Array("GET /metrics HTTP/1.1\r\nHost: x\r\n".utf8)) == nil)
        #expect(MetricsConnection.requestLine(Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8)) == .request(method: "GET", path: "/metrics"))
        #expect(MetricsConnection.requestLine(Array("GET /metrics HTTP/1.0\n\n".utf8)) == .request(method: "GET", path: "/metrics"))
        #expect(MetricsConnection.requestLine(Array("nonsense\r\n\r\n".utf8)) == .request(method: "", path: ""), "answered (404), not waited on")
    }

    @Test func statusTextMapsToOneStateOfTheSet() {
        for (text, state) in [("backoff 1.6s", "backoff"), ("waiting for db", "waiting"), ("stopped (operator)", "stopped"),
                              ("exited (temporary)", "exited"), ("awaiting guardian", "awaiting_guardian"),
                              ("handing off", "handing_off"), ("ready", "ready"), ("completed", "completed")] {
            #expect(MetricsReport.state(text) == state, "\(text)")
            #expect(MetricsReport.states.contains(state))
        }
    }
}

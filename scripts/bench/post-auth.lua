-- wrk script: an empty POST with the Authorization header AUTH (e.g. "Bearer wdn_…").
wrk.method = "POST"
wrk.headers["Authorization"] = os.getenv("AUTH")

# Prints the rows of TestScheduleOpen (rules/schedule_test.go): for each, the UTC instant and the
# wall-clock time with its offset, by Python's zoneinfo, a second reading of the tz database
# besides Go's. Run: python3 rules/testdata/schedule_instants.py
import datetime, zoneinfo
UTC = datetime.timezone.utc
rows = [
 # name, schedule, zone, local-or-utc, value, fold, want
 ("support: a second before opening", "support", "America/Chicago", "L", "2026-03-09T07:59:59", 0, False),
 ("support: opening, inclusive", "support", "America/Chicago", "L", "2026-03-09T08:00:00", 0, True),
 ("support: a second before closing", "support", "America/Chicago", "L", "2026-03-09T17:59:59", 0, True),
 ("support: closing, exclusive", "support", "America/Chicago", "L", "2026-03-09T18:00:00", 0, False),
 ("support: 13:30Z on the Friday before spring forward is 07:30 CST", "support", "America/Chicago", "U", "2026-03-06T13:30:00", 0, False),
 ("support: 13:30Z on the Monday after spring forward is 08:30 CDT", "support", "America/Chicago", "U", "2026-03-09T13:30:00", 0, True),
 ("support: 13:30Z on the Friday before falling back is 08:30 CDT", "support", "America/Chicago", "U", "2026-10-30T13:30:00", 0, True),
 ("support: 13:30Z on the Monday after falling back is 07:30 CST", "support", "America/Chicago", "U", "2026-11-02T13:30:00", 0, False),
 ("support: saturday morning", "support", "America/Chicago", "L", "2026-03-14T11:59:00", 0, True),
 ("support: saturday lunch starts", "support", "America/Chicago", "L", "2026-03-14T12:00:00", 0, False),
 ("support: saturday lunch ends", "support", "America/Chicago", "L", "2026-03-14T13:00:00", 0, True),
 ("support: saturday afternoon ends", "support", "America/Chicago", "L", "2026-03-14T15:00:00", 0, False),
 ("support: sunday is not listed", "support", "America/Chicago", "L", "2026-03-15T10:00:00", 0, False),
 ("support: christmas eve, a thursday", "support", "America/Chicago", "L", "2026-12-24T10:00:00", 0, True),
 ("support: christmas day, closed", "support", "America/Chicago", "L", "2026-12-25T10:00:00", 0, False),
 ("support: new year's day, closed", "support", "America/Chicago", "L", "2027-01-01T12:00:00", 0, False),
 ("support: the monday after", "support", "America/Chicago", "L", "2027-01-04T12:00:00", 0, True),
 ("night: a second before it opens", "night", "Europe/London", "L", "2026-03-09T21:59:59", 0, False),
 ("night: opens at 22:00", "night", "Europe/London", "L", "2026-03-09T22:00:00", 0, True),
 ("night: after midnight, monday's range", "night", "Europe/London", "L", "2026-03-10T05:59:59", 0, True),
 ("night: closes at 06:00", "night", "Europe/London", "L", "2026-03-10T06:00:00", 0, False),
 ("night: christmas eve, before midnight", "night", "Europe/London", "L", "2026-12-24T23:30:00", 0, True),
 ("night: christmas day after midnight: the range begun the evening before runs on", "night", "Europe/London", "L", "2026-12-25T03:00:00", 0, True),
 ("night: christmas night: the closed day's range does not start", "night", "Europe/London", "L", "2026-12-25T22:30:00", 0, False),
 ("night: after midnight into the 26th: the closed day's range does not run on", "night", "Europe/London", "L", "2026-12-26T02:00:00", 0, False),
 ("night: the 26th in the evening", "night", "Europe/London", "L", "2026-12-26T22:30:00", 0, True),
 ("night: 05:30Z the day before spring forward is 05:30 GMT", "night", "Europe/London", "U", "2026-03-28T05:30:00", 0, True),
 ("night: 04:59:59Z on spring forward is 05:59:59 BST", "night", "Europe/London", "U", "2026-03-29T04:59:59", 0, True),
 ("night: 05:00Z on spring forward is 06:00 BST", "night", "Europe/London", "U", "2026-03-29T05:00:00", 0, False),
 ("night: 20:59:59Z the evening before falling back is 21:59:59 BST", "night", "Europe/London", "U", "2026-10-24T20:59:59", 0, False),
 ("night: 21:00Z the evening before falling back is 22:00 BST", "night", "Europe/London", "U", "2026-10-24T21:00:00", 0, True),
 ("night: 05:59:59Z after falling back is 05:59:59 GMT", "night", "Europe/London", "U", "2026-10-25T05:59:59", 0, True),
 ("night: 06:00Z after falling back is 06:00 GMT", "night", "Europe/London", "U", "2026-10-25T06:00:00", 0, False),
 ("weekend: fri-mon takes monday", "weekend", "Australia/Sydney", "L", "2026-03-09T10:00:00", 0, True),
 ("weekend: tuesday is outside fri-mon", "weekend", "Australia/Sydney", "L", "2026-03-10T10:00:00", 0, False),
 ("weekend: thursday is outside fri-mon", "weekend", "Australia/Sydney", "L", "2026-03-12T16:00:00", 0, False),
 ("weekend: friday", "weekend", "Australia/Sydney", "L", "2026-03-13T16:59:00", 0, True),
 ("weekend: sunday", "weekend", "Australia/Sydney", "L", "2026-03-15T09:00:00", 0, True),
 ("weekend: good friday, closed", "weekend", "Australia/Sydney", "L", "2026-04-03T10:00:00", 0, False),
 ("weekend: 22:30Z friday before daylight saving ends is saturday 09:30 AEDT", "weekend", "Australia/Sydney", "U", "2026-04-03T22:30:00", 0, True),
 ("weekend: 22:30Z saturday after daylight saving ends is sunday 08:30 AEST", "weekend", "Australia/Sydney", "U", "2026-04-04T22:30:00", 0, False),
 ("weekend: 22:30Z friday before daylight saving starts is saturday 08:30 AEST", "weekend", "Australia/Sydney", "U", "2026-10-02T22:30:00", 0, False),
 ("weekend: 22:30Z saturday after daylight saving starts is sunday 09:30 AEDT", "weekend", "Australia/Sydney", "U", "2026-10-03T22:30:00", 0, True),
 ("weekend: wednesday's first range", "weekend", "Australia/Sydney", "L", "2026-03-11T01:59:00", 0, True),
 ("weekend: wednesday's first range ends", "weekend", "Australia/Sydney", "L", "2026-03-11T02:00:00", 0, False),
 ("weekend: wednesday's last range", "weekend", "Australia/Sydney", "L", "2026-03-11T23:00:00", 0, True),
 ("weekend: wednesday's last second", "weekend", "Australia/Sydney", "L", "2026-03-11T23:59:59", 0, True),
 ("weekend: 24:00 ends the day", "weekend", "Australia/Sydney", "L", "2026-03-12T00:00:00", 0, False),
 ("day: a minute before a range that ends where it starts", "day", "America/New_York", "L", "2026-03-12T11:59:00", 0, False),
 ("day: noon thursday opens 24 hours", "day", "America/New_York", "L", "2026-03-12T12:00:00", 0, True),
 ("day: friday morning is thursday's range", "day", "America/New_York", "L", "2026-03-13T11:59:59", 0, True),
 ("day: noon friday ends it", "day", "America/New_York", "L", "2026-03-13T12:00:00", 0, False),
 ("day: 01:30 EST on spring forward", "day", "America/New_York", "U", "2026-03-08T06:30:00", 0, True),
 ("day: 01:59:59 EST on spring forward", "day", "America/New_York", "U", "2026-03-08T06:59:59", 0, True),
 ("day: 03:00 EDT, a second later, is still before 03:30", "day", "America/New_York", "U", "2026-03-08T07:00:00", 0, True),
 ("day: 03:30 EDT ends the range after an hour", "day", "America/New_York", "U", "2026-03-08T07:30:00", 0, False),
 ("day: 01:30 EDT on falling back", "day", "America/New_York", "U", "2026-11-01T05:30:00", 0, True),
 ("day: 01:00 EST, the hour again, is before 01:30", "day", "America/New_York", "U", "2026-11-01T06:00:00", 0, False),
 ("day: 01:30 EST, the second time", "day", "America/New_York", "U", "2026-11-01T06:30:00", 0, True),
 ("day: 03:29:59 EST", "day", "America/New_York", "U", "2026-11-01T08:29:59", 0, True),
 ("day: 03:30 EST ends it", "day", "America/New_York", "U", "2026-11-01T08:30:00", 0, False),
]
for name, sched, zone, kind, value, fold, want in rows:
    z = zoneinfo.ZoneInfo(zone)
    if kind == "L":
        local = datetime.datetime.fromisoformat(value).replace(tzinfo=z, fold=fold)
        utc = local.astimezone(UTC)
        # a wall time in a gap would not round-trip; none of the rows is one
        assert utc.astimezone(z).replace(tzinfo=None) == local.replace(tzinfo=None), name
    else:
        utc = datetime.datetime.fromisoformat(value).replace(tzinfo=UTC)
        local = utc.astimezone(z)
    print('\t{%s, %s, "%s", "%s", %s},' % ('"%s"' % name, '"%s"' % sched, utc.strftime("%Y-%m-%dT%H:%M:%SZ"), local.isoformat(), "true" if want else "false"))

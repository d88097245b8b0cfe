import Foundation

/// The two date forms SigV4 meets: `X-Amz-Date` (`20150830T123600Z`) and HTTP `Date`
/// (`Sun, 30 Aug 2015 12:36:00 GMT`), both UTC.
public enum AmzDate {
    /// `yyyyMMdd'T'HHmmss'Z'`, written digit by digit (String(format:) went through
    /// CoreFoundation's formatter on every signed request).
    public static func format(_ date: Date) -> String {
        var time = time_t(date.timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&time, &parts)
        var text: [UInt8] = []
        text.reserveCapacity(16)
        func digits(_ value: Int32, _ count: Int) {
            var divisor: Int32 = 1
            for _ in 1..<count { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                text.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: (rest / divisor) % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        digits(parts.tm_year + 1900, 4); digits(parts.tm_mon + 1, 2); digits(parts.tm_mday, 2)
        text.append(UInt8(ascii: "T"))
        digits(parts.tm_hour, 2); digits(parts.tm_min, 2); digits(parts.tm_sec, 2)
        text.append(UInt8(ascii: "Z"))
        return String(decoding: text, as: UTF8.self)
    }

    /// Parses `yyyyMMdd'T'HHmmss'Z'`.
    public static func parse(_ text: String) -> Date? {
        let digits = Array(text.utf8)
        guard digits.count == 16, digits[8] == UInt8(ascii: "T"), digits[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int32? {
            var value: Int32 = 0
            for d in digits[range] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(d) else { return nil }
                value = value * 10 + Int32(d - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8),
              let hour = number(9..<11), let minute = number(11..<13), let second = number(13..<15),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(daysSinceEpoch(year: Int(year), month: Int(month), day: Int(day)) * 86_400
                                                        + Int(hour) * 3600 + Int(minute) * 60 + Int(second)))
    }

    /// Days from 1970-01-01 to a proleptic Gregorian date (Hinnant's days_from_civil): timegm(3)
    /// without its library call, on every signed request.
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// Parses an RFC 7231 IMF-fixdate (`Sun, 30 Aug 2015 12:36:00 GMT`) into the amz form.
    public static func fromHTTPDate(_ text: String) -> String? {
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let fields = text.split(separator: " ")
        guard fields.count == 6, fields[5] == "GMT", let month = months.firstIndex(of: String(fields[2])) else { return nil }
        let time = fields[4].split(separator: ":")
        guard time.count == 3, fields[3].count == 4, fields[1].count <= 2 else { return nil }
        let amz = "\(fields[3])\(String(month + 1).leftPadded(to: 2))\(String(fields[1]).leftPadded(to: 2))T\(time[0])\(time[1])\(time[2])Z"
        return parse(amz) == nil ? nil : amz
    }
}

import Foundation
import KMSClient
import Testing

@Suite struct AWSConfigurationTests {
    /// A temporary HOME with ~/.aws files.
    final class Home {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("aws-home-\(UUID().uuidString)").path
        init(credentials: String? = nil, config: String? = nil) throws {
            try FileManager.default.createDirectory(atPath: path + "/.aws", withIntermediateDirectories: true)
            if let credentials { try credentials.write(toFile: path + "/.aws/credentials", atomically: true, encoding: .utf8) }
            if let config { try config.write(toFile: path + "/.aws/config", atomically: true, encoding: .utf8) }
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    @Test func environmentCredentialsAndEndpoint() throws {
        let home = try Home()
        let resolved = try AWSConfiguration.resolve(environment: [
            "AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "tok",
            "AWS_REGION": "eu-central-1", "AWS_ENDPOINT_URL": "http://general:1", "AWS_ENDPOINT_URL_KMS": "http://kms:2",
        ], home: home.path)
        #expect(resolved == AWSConfiguration(endpoint: "http://kms:2", region: "eu-central-1", accessKeyID: "AKIAENV",
                                             secretAccessKey: "env-secret", sessionToken: "tok"))
        let general = try AWSConfiguration.resolve(environment: [
            "AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S", "AWS_DEFAULT_REGION": "us-west-2", "AWS_ENDPOINT_URL": "http://general:1",
        ], home: home.path)
        #expect(general.endpoint == "http://general:1" && general.region == "us-west-2")
        let aws = try AWSConfiguration.resolve(environment: ["AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S", "AWS_REGION": "ap-south-1"],
                                               home: home.path)
        #expect(aws.endpoint == "https://kms.ap-south-1.amazonaws.com")
    }

    @Test func profilesFromFiles() throws {
        let home = try Home(
            credentials: """
            [default]
            aws_access_key_id = AKIADEFAULT
            aws_secret_access_key = default-secret
            # a comment
            [work]
            aws_access_key_id=AKIAWORK
            aws_secret_access_key=work-secret
            aws_session_token=work-token
            """,
            config: """
            [default]
            region = us-east-1
            [profile work]
            region = eu-west-3
            endpoint_url = http://127.0.0.1:9000
            [profile config-only]
            region = sa-east-1
            aws_access_key_id = AKIACONFIG
            aws_secret_access_key = config-secret
            """)
        let byDefault = try AWSConfiguration.resolve(environment: [:], home: home.path)
        #expect(byDefault.accessKeyID == "AKIADEFAULT" && byDefault.region == "us-east-1")
        let work = try AWSConfiguration.resolve(environment: ["AWS_PROFILE": "work"], home: home.path)
        #expect(work == AWSConfiguration(endpoint: "http://127.0.0.1:9000", region: "eu-west-3", accessKeyID: "AKIAWORK",
                                         secretAccessKey: "work-secret", sessionToken: "work-token"))
        let configOnly = try AWSConfiguration.resolve(.init(profile: "config-only"), environment: [:], home: home.path)
        #expect(configOnly.accessKeyID == "AKIACONFIG" && configOnly.region == "sa-east-1")
        // The environment beats the profile; explicit options beat both.
        let mixed = try AWSConfiguration.resolve(.init(region: "me-south-1"),
                                                 environment: ["AWS_PROFILE": "work", "AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "e",
                                                               "AWS_REGION": "eu-north-1"], home: home.path)
        #expect(mixed.accessKeyID == "AKIAENV" && mixed.region == "me-south-1" && mixed.endpoint == "http://127.0.0.1:9000")
        // Files named by the environment.
        let moved = try AWSConfiguration.resolve(environment: ["AWS_SHARED_CREDENTIALS_FILE": home.path + "/.aws/credentials",
                                                               "AWS_CONFIG_FILE": "/nonexistent", "AWS_REGION": "x-1"], home: "/nonexistent")
        #expect(moved.accessKeyID == "AKIADEFAULT")
    }

    @Test func missingPiecesAreClearErrors() throws {
        let home = try Home()
        let noRegion = try #require(throws: KMSClientError.self) {
            try AWSConfiguration.resolve(environment: ["AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S"], home: home.path)
        }
        #expect(noRegion.message.contains("region"))
        let noCredentials = try #require(throws: KMSClientError.self) {
            try AWSConfiguration.resolve(environment: ["AWS_REGION": "us-east-1"], home: home.path)
        }
        #expect(noCredentials.kind == .accessDenied && noCredentials.message.contains("credentials"))
    }
}

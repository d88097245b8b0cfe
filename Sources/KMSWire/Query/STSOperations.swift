import KMSEngine

extension QueryProtocol {
    static let stsOperations: [OperationSpec] = [
        OperationSpec(name: "AssumeRole", service: .sts, writes: false) { p, caller, engine in
            let roleARN = try p.required("RoleArn"), sessionName = try p.required("RoleSessionName")
            let duration = try p.int("DurationSeconds")
            try p.finish()
            let c = try engine.assumeRole(roleARN: roleARN, sessionName: sessionName, durationSeconds: duration, caller: caller)
            return [
                .element("Credentials", [.text("AccessKeyId", c.accessKeyID), .text("SecretAccessKey", c.secretAccessKey),
                                         .text("SessionToken", c.sessionToken), .date("Expiration", c.expiration)]),
                .element("AssumedRoleUser", [.text("AssumedRoleId", c.assumedRoleID), .text("Arn", c.assumedRoleARN)]),
            ]
        },
        OperationSpec(name: "GetCallerIdentity", service: .sts, writes: false) { p, caller, engine in
            try p.finish()
            let identity = engine.callerIdentity(caller)
            return [.text("UserId", identity.userID), .text("Account", identity.account), .text("Arn", identity.arn)]
        },
    ]
}

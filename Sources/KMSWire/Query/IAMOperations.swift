import KMSEngine

/// The IAM operations kmsd serves: users, their access keys and inline policies; roles, their
/// trust and inline policies. Managed policies, groups, instance profiles and the rest of IAM
/// are not served (InvalidAction).
extension QueryProtocol {
    static let iamOperations: [OperationSpec] = userOperations + accessKeyOperations + roleOperations + policyOperations(.user) + policyOperations(.role)

    static let userOperations: [OperationSpec] = [
        OperationSpec(name: "CreateUser", service: .iam, writes: true) { p, caller, engine in
            let name = try p.required("UserName"), tags = try p.tags("Tags")
            _ = p.string("Path")
            try p.finish()
            let user = try engine.createIdentity(.user, name: name, tags: tags.map { Tag(tagKey: $0.0, tagValue: $0.1) }, caller: caller)
            return [userElement(user)]
        },
        OperationSpec(name: "GetUser", service: .iam, writes: false) { p, caller, engine in
            let name = p.string("UserName")
            try p.finish()
            guard let name = name ?? PrincipalARN.userName(caller.principal) else {
                // The root: IAM answers with the account's root "user".
                return [.element("User", [.text("Path", "/"), .text("UserId", caller.account), .text("Arn", caller.principal),
                                          .date("CreateDate", engine.accountCreationDate(caller.account))])]
            }
            return [userElement(try engine.getIdentity(.user, name: name, caller: caller))]
        },
        OperationSpec(name: "ListUsers", service: .iam, writes: false) { p, caller, engine in
            p.accept("PathPrefix", "Marker", "MaxItems")
            try p.finish()
            let users = try engine.listIdentities(.user, caller: caller)
            return [.members("Users", users.map { identityFields($0) }), .text("IsTruncated", "false")]
        },
        OperationSpec(name: "DeleteUser", service: .iam, writes: true) { p, caller, engine in
            let name = try p.required("UserName")
            try p.finish()
            try engine.deleteIdentity(.user, name: name, caller: caller)
            return []
        },
    ]

    static let accessKeyOperations: [OperationSpec] = [
        OperationSpec(name: "CreateAccessKey", service: .iam, writes: true) { p, caller, engine in
            let name = p.string("UserName")
            try p.finish()
            let key = try engine.createAccessKey(userName: name, caller: caller)
            var fields = accessKeyFields(key.record)
            fields.insert(.text("SecretAccessKey", key.secretAccessKey), at: 3)
            return [.element("AccessKey", fields)]
        },
        OperationSpec(name: "UpdateAccessKey", service: .iam, writes: true) { p, caller, engine in
            let id = try p.required("AccessKeyId"), status = try p.required("Status"), name = p.string("UserName")
            try p.finish()
            try engine.updateAccessKey(id, status: status, userName: name, caller: caller)
            return []
        },
        OperationSpec(name: "DeleteAccessKey", service: .iam, writes: true) { p, caller, engine in
            let id = try p.required("AccessKeyId"), name = p.string("UserName")
            try p.finish()
            try engine.deleteAccessKey(id, userName: name, caller: caller)
            return []
        },
        OperationSpec(name: "ListAccessKeys", service: .iam, writes: false) { p, caller, engine in
            let name = p.string("UserName")
            p.accept("Marker", "MaxItems")
            try p.finish()
            let keys = try engine.listAccessKeys(userName: name, caller: caller)
            return [.members("AccessKeyMetadata", keys.map(accessKeyFields)), .text("IsTruncated", "false")]
        },
    ]

    static let roleOperations: [OperationSpec] = [
        OperationSpec(name: "CreateRole", service: .iam, writes: true) { p, caller, engine in
            let name = try p.required("RoleName"), trust = try p.required("AssumeRolePolicyDocument")
            let description = p.string("Description"), duration = try p.int("MaxSessionDuration"), tags = try p.tags("Tags")
            _ = p.string("Path")
            try p.finish()
            let role = try engine.createIdentity(.role, name: name, trustPolicy: trust, description: description, maxSessionDuration: duration,
                                                 tags: tags.map { Tag(tagKey: $0.0, tagValue: $0.1) }, caller: caller)
            return [.element("Role", roleFields(role))]
        },
        OperationSpec(name: "GetRole", service: .iam, writes: false) { p, caller, engine in
            let name = try p.required("RoleName")
            try p.finish()
            return [.element("Role", roleFields(try engine.getIdentity(.role, name: name, caller: caller)))]
        },
        OperationSpec(name: "ListRoles", service: .iam, writes: false) { p, caller, engine in
            p.accept("PathPrefix", "Marker", "MaxItems")
            try p.finish()
            return [.members("Roles", try engine.listIdentities(.role, caller: caller).map(roleFields)), .text("IsTruncated", "false")]
        },
        OperationSpec(name: "DeleteRole", service: .iam, writes: true) { p, caller, engine in
            let name = try p.required("RoleName")
            try p.finish()
            try engine.deleteIdentity(.role, name: name, caller: caller)
            return []
        },
        OperationSpec(name: "UpdateAssumeRolePolicy", service: .iam, writes: true) { p, caller, engine in
            let name = try p.required("RoleName"), document = try p.required("PolicyDocument")
            try p.finish()
            try engine.updateTrustPolicy(roleName: name, document: document, caller: caller)
            return []
        },
    ]

    /// PutUserPolicy, GetUserPolicy, DeleteUserPolicy, ListUserPolicies and their Role twins.
    static func policyOperations(_ kind: IdentityRecord.Kind) -> [OperationSpec] {
        let noun = kind == .user ? "User" : "Role"
        let nameParameter = "\(noun)Name"
        return [
            OperationSpec(name: "Put\(noun)Policy", service: .iam, writes: true) { p, caller, engine in
                let name = try p.required(nameParameter), policyName = try p.required("PolicyName"), document = try p.required("PolicyDocument")
                try p.finish()
                try engine.putIdentityPolicy(kind, name: name, policyName: policyName, document: document, caller: caller)
                return []
            },
            OperationSpec(name: "Get\(noun)Policy", service: .iam, writes: false) { p, caller, engine in
                let name = try p.required(nameParameter), policyName = try p.required("PolicyName")
                try p.finish()
                let document = try engine.getIdentityPolicy(kind, name: name, policyName: policyName, caller: caller)
                return [.text(nameParameter, name), .text("PolicyName", policyName), .text("PolicyDocument", encodedDocument(document))]
            },
            OperationSpec(name: "Delete\(noun)Policy", service: .iam, writes: true) { p, caller, engine in
                let name = try p.required(nameParameter), policyName = try p.required("PolicyName")
                try p.finish()
                try engine.deleteIdentityPolicy(kind, name: name, policyName: policyName, caller: caller)
                return []
            },
            OperationSpec(name: "List\(noun)Policies", service: .iam, writes: false) { p, caller, engine in
                let name = try p.required(nameParameter)
                p.accept("Marker", "MaxItems")
                try p.finish()
                let names = try engine.listIdentityPolicies(kind, name: name, caller: caller)
                return [.element("PolicyNames", names.map { .text("member", $0) }), .text("IsTruncated", "false")]
            },
        ]
    }

    static func identityFields(_ record: IdentityRecord) -> [XML] {
        var fields: [XML] = [.text("Path", "/"), .text(record.kind == .user ? "UserName" : "RoleName", record.name),
                             .text(record.kind == .user ? "UserId" : "RoleId", record.id), .text("Arn", record.arn),
                             .date("CreateDate", record.creationDate)]
        if !record.tags.isEmpty {
            fields.append(.members("Tags", record.tags.map { [.text("Key", $0.tagKey), .text("Value", $0.tagValue)] }))
        }
        return fields
    }

    static func userElement(_ record: IdentityRecord) -> XML { .element("User", identityFields(record)) }

    static func roleFields(_ record: IdentityRecord) -> [XML] {
        var fields = identityFields(record)
        fields.insert(.text("AssumeRolePolicyDocument", encodedDocument(record.trustPolicy ?? "")), at: 5)
        if let description = record.description { fields.append(.text("Description", description)) }
        fields.append(.text("MaxSessionDuration", String(record.maxSessionDuration ?? 3600)))
        return fields
    }

    static func accessKeyFields(_ record: AccessKeyRecord) -> [XML] {
        [.text("UserName", record.userName ?? ""), .text("AccessKeyId", record.accessKeyID), .text("Status", record.isActive ? "Active" : "Inactive"),
         .date("CreateDate", record.creationDate)]
    }
}

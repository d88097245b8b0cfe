/// The actions of the IAM policy language this service decides: `kms:*` for keys, `iam:*` for
/// identities, `sts:*` for sessions. Typed, so that a misspelt action is a compile error rather
/// than a permission nobody can grant.
public enum KMSAction: String, Sendable, CaseIterable {
    // kms: keys and their use
    case createKey = "kms:CreateKey", describeKey = "kms:DescribeKey", listKeys = "kms:ListKeys"
    case updateKeyDescription = "kms:UpdateKeyDescription", enableKey = "kms:EnableKey", disableKey = "kms:DisableKey"
    case scheduleKeyDeletion = "kms:ScheduleKeyDeletion", cancelKeyDeletion = "kms:CancelKeyDeletion"
    case encrypt = "kms:Encrypt", decrypt = "kms:Decrypt"
    case reEncryptFrom = "kms:ReEncryptFrom", reEncryptTo = "kms:ReEncryptTo"
    case generateDataKey = "kms:GenerateDataKey", generateDataKeyWithoutPlaintext = "kms:GenerateDataKeyWithoutPlaintext"
    case generateRandom = "kms:GenerateRandom"
    case createAlias = "kms:CreateAlias", updateAlias = "kms:UpdateAlias", deleteAlias = "kms:DeleteAlias"
    case listAliases = "kms:ListAliases"
    case tagResource = "kms:TagResource", untagResource = "kms:UntagResource", listResourceTags = "kms:ListResourceTags"
    case enableKeyRotation = "kms:EnableKeyRotation", disableKeyRotation = "kms:DisableKeyRotation"
    case getKeyRotationStatus = "kms:GetKeyRotationStatus", rotateKeyOnDemand = "kms:RotateKeyOnDemand"
    case listKeyRotations = "kms:ListKeyRotations"
    case getKeyPolicy = "kms:GetKeyPolicy", putKeyPolicy = "kms:PutKeyPolicy", listKeyPolicies = "kms:ListKeyPolicies"
    case createGrant = "kms:CreateGrant", listGrants = "kms:ListGrants", retireGrant = "kms:RetireGrant"
    case revokeGrant = "kms:RevokeGrant", listRetirableGrants = "kms:ListRetirableGrants"
    // kms: operations of the asymmetric and HMAC key specs (grantable; issue 16 serves them)
    case sign = "kms:Sign", verify = "kms:Verify", getPublicKey = "kms:GetPublicKey"
    case generateDataKeyPair = "kms:GenerateDataKeyPair", generateDataKeyPairWithoutPlaintext = "kms:GenerateDataKeyPairWithoutPlaintext"
    case generateMac = "kms:GenerateMac", verifyMac = "kms:VerifyMac", deriveSharedSecret = "kms:DeriveSharedSecret"
    // kms: imported key material
    case getParametersForImport = "kms:GetParametersForImport", importKeyMaterial = "kms:ImportKeyMaterial"
    case deleteImportedKeyMaterial = "kms:DeleteImportedKeyMaterial"
    case getKeyLastUsage = "kms:GetKeyLastUsage"
    // kms: custom key stores and multi-Region keys (refused, after authorization, until served)
    case createCustomKeyStore = "kms:CreateCustomKeyStore", describeCustomKeyStores = "kms:DescribeCustomKeyStores"
    case connectCustomKeyStore = "kms:ConnectCustomKeyStore", disconnectCustomKeyStore = "kms:DisconnectCustomKeyStore"
    case updateCustomKeyStore = "kms:UpdateCustomKeyStore", deleteCustomKeyStore = "kms:DeleteCustomKeyStore"
    case replicateKey = "kms:ReplicateKey", updatePrimaryRegion = "kms:UpdatePrimaryRegion"
    // iam: identities (the subset of IAM kmsd serves)
    case iamCreateUser = "iam:CreateUser", iamDeleteUser = "iam:DeleteUser", iamGetUser = "iam:GetUser", iamListUsers = "iam:ListUsers"
    case iamCreateAccessKey = "iam:CreateAccessKey", iamUpdateAccessKey = "iam:UpdateAccessKey"
    case iamDeleteAccessKey = "iam:DeleteAccessKey", iamListAccessKeys = "iam:ListAccessKeys"
    case iamPutUserPolicy = "iam:PutUserPolicy", iamGetUserPolicy = "iam:GetUserPolicy"
    case iamDeleteUserPolicy = "iam:DeleteUserPolicy", iamListUserPolicies = "iam:ListUserPolicies"
    case iamCreateRole = "iam:CreateRole", iamDeleteRole = "iam:DeleteRole", iamGetRole = "iam:GetRole", iamListRoles = "iam:ListRoles"
    case iamUpdateAssumeRolePolicy = "iam:UpdateAssumeRolePolicy"
    case iamPutRolePolicy = "iam:PutRolePolicy", iamGetRolePolicy = "iam:GetRolePolicy"
    case iamDeleteRolePolicy = "iam:DeleteRolePolicy", iamListRolePolicies = "iam:ListRolePolicies"
    // sts
    case stsAssumeRole = "sts:AssumeRole"

    /// The operations a grant may allow (CreateGrant's `Operations`), by their action.
    public static let grantable: [String: KMSAction] = {
        let actions: [KMSAction] = [.decrypt, .encrypt, .generateDataKey, .generateDataKeyWithoutPlaintext, .reEncryptFrom,
                                    .reEncryptTo, .createGrant, .retireGrant, .describeKey, .sign, .verify, .getPublicKey,
                                    .generateDataKeyPair, .generateDataKeyPairWithoutPlaintext, .generateMac, .verifyMac,
                                    .deriveSharedSecret]
        return Dictionary(uniqueKeysWithValues: actions.map { ($0.operation, $0) })
    }()

    /// The operation name (`Decrypt` for `kms:Decrypt`).
    public var operation: String { String(rawValue[rawValue.index(after: rawValue.firstIndex(of: ":")!)...]) }

    /// Actions on the account rather than on one key: their resource is `*`, and only identity
    /// policies (and endpoint policies) decide them, never a key policy.
    public var isAccountLevel: Bool {
        switch self {
        case .createKey, .listKeys, .listAliases, .generateRandom, .listRetirableGrants, .createCustomKeyStore,
             .describeCustomKeyStores, .connectCustomKeyStore, .disconnectCustomKeyStore, .updateCustomKeyStore,
             .deleteCustomKeyStore:
            return true
        default: return rawValue.hasPrefix("iam:") || rawValue.hasPrefix("sts:")
        }
    }

    /// Actions a caller may take on an AWS-managed key without its service: reading it.
    var readsKey: Bool {
        switch self {
        case .describeKey, .getKeyRotationStatus, .listResourceTags, .getKeyLastUsage, .listKeyRotations, .getKeyPolicy, .listKeyPolicies,
             .listAliases, .listGrants:
            return true
        default: return false
        }
    }
}

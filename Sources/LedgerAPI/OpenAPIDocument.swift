/// The OpenAPI 3 document served at `/openapi.json`. Keep it in step with `LedgerAPI.router()`
/// (a test checks that every route is described).
enum OpenAPIDocument {
    static let json = #"""
{
 "components": {
  "schemas": {
   "Block": {
    "properties": {
     "certificate": {
      "type": "object"
     },
     "hash": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "header": {
      "type": "object"
     },
     "height": {
      "type": "integer"
     },
     "transactions": {
      "items": {
       "pattern": "^[0-9a-f]{64}$",
       "type": "string"
      },
      "type": "array"
     }
    },
    "type": "object"
   },
   "Error": {
    "properties": {
     "error": {
      "properties": {
       "code": {
        "type": "string"
       },
       "message": {
        "type": "string"
       }
      },
      "required": [
       "code",
       "message"
      ],
      "type": "object"
     }
    },
    "required": [
     "error"
    ],
    "type": "object"
   },
   "Financing": {
    "properties": {
     "advance": {
      "type": "integer"
     },
     "applicant": {
      "type": "string"
     },
     "bank": {
      "type": "string"
     },
     "decisionTx": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "fragment": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "id": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "reason": {
      "type": "string"
     },
     "requested": {
      "$ref": "#/components/schemas/Money"
     },
     "status": {
      "type": "string"
     }
    },
    "type": "object"
   },
   "Fragment": {
    "properties": {
     "amount": {
      "type": "integer"
     },
     "createdBy": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "currency": {
      "type": "string"
     },
     "financingRequest": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "frozen": {
      "type": "boolean"
     },
     "generation": {
      "type": "integer"
     },
     "holder": {
      "type": "string"
     },
     "id": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "outstanding": {
      "type": "integer"
     },
     "parent": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "root": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "state": {
      "type": "string"
     }
    },
    "type": "object"
   },
   "FragmentDetail": {
    "properties": {
     "fragment": {
      "$ref": "#/components/schemas/Fragment"
     },
     "provenance": {
      "items": {
       "properties": {
        "createdBy": {
         "$ref": "#/components/schemas/History"
        },
        "fragment": {
         "$ref": "#/components/schemas/Fragment"
        }
       },
       "type": "object"
      },
      "type": "array"
     },
     "receivable": {
      "$ref": "#/components/schemas/Receivable"
     }
    },
    "type": "object"
   },
   "History": {
    "properties": {
     "height": {
      "type": "integer"
     },
     "kind": {
      "type": "string"
     },
     "outcome": {
      "type": "string"
     },
     "signer": {
      "type": "string"
     },
     "transaction": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     }
    },
    "type": "object"
   },
   "InclusionProof": {
    "properties": {
     "blockHash": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "certificate": {
      "type": "object"
     },
     "header": {
      "type": "object"
     },
     "height": {
      "type": "integer"
     },
     "receipt": {
      "type": "object"
     },
     "receiptProof": {
      "type": "object"
     },
     "transaction": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "transactionBytes": {
      "type": "string"
     },
     "transactionProof": {
      "type": "object"
     }
    },
    "type": "object"
   },
   "Money": {
    "properties": {
     "amount": {
      "description": "minor units",
      "type": "integer"
     },
     "currency": {
      "type": "string"
     }
    },
    "type": "object"
   },
   "Receivable": {
    "properties": {
     "confirmationTx": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "creditor": {
      "type": "string"
     },
     "debtor": {
      "type": "string"
     },
     "documentHashes": {
      "items": {
       "pattern": "^[0-9a-f]{64}$",
       "type": "string"
      },
      "type": "array"
     },
     "face": {
      "$ref": "#/components/schemas/Money"
     },
     "id": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "initiator": {
      "type": "string"
     },
     "invoices": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "issueDate": {
      "format": "date",
      "type": "string"
     },
     "liveFragments": {
      "items": {
       "pattern": "^[0-9a-f]{64}$",
       "type": "string"
      },
      "type": "array"
     },
     "maturity": {
      "format": "date",
      "type": "string"
     },
     "recourse": {
      "type": "string"
     },
     "settled": {
      "type": "integer"
     },
     "status": {
      "type": "string"
     },
     "writtenOff": {
      "type": "integer"
     }
    },
    "type": "object"
   },
   "ReceivableDetail": {
    "properties": {
     "financing": {
      "items": {
       "$ref": "#/components/schemas/Financing"
      },
      "type": "array"
     },
     "fragments": {
      "items": {
       "$ref": "#/components/schemas/Fragment"
      },
      "type": "array"
     },
     "history": {
      "items": {
       "$ref": "#/components/schemas/History"
      },
      "type": "array"
     },
     "receivable": {
      "$ref": "#/components/schemas/Receivable"
     }
    },
    "type": "object"
   },
   "Status": {
    "properties": {
     "catchingUp": {
      "type": "boolean"
     },
     "chainID": {
      "type": "string"
     },
     "cryptoSuite": {
      "type": "string"
     },
     "genesisHash": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "halted": {
      "type": "string"
     },
     "headHash": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "height": {
      "type": "integer"
     },
     "isPrimary": {
      "type": "boolean"
     },
     "peersConnected": {
      "items": {
       "type": "string"
      },
      "type": "array"
     },
     "pendingTransactions": {
      "type": "integer"
     },
     "primary": {
      "type": "string"
     },
     "readModelIndexesSuspended": {
      "description": "A bulk catch-up dropped the indexes of queries by party, holder, status and signer; they answer the same, by scanning, until it ends",
      "type": "boolean"
     },
     "validator": {
      "type": "string"
     },
     "view": {
      "type": "integer"
     }
    },
    "type": "object"
   },
   "BatchSubmitRequest": {
    "properties": {
     "transactions": {
      "items": {
       "description": "Signed transaction wire bytes, hex",
       "type": "string"
      },
      "maxItems": 1000,
      "type": "array"
     }
    },
    "required": [
     "transactions"
    ],
    "type": "object"
   },
   "BatchSubmitResponse": {
    "properties": {
     "results": {
      "items": {
       "$ref": "#/components/schemas/BatchSubmitResult"
      },
      "type": "array"
     }
    },
    "required": [
     "results"
    ],
    "type": "object"
   },
   "BatchSubmitResult": {
    "properties": {
     "accepted": {
      "type": "boolean"
     },
     "code": {
      "description": "Rejection code when not accepted",
      "type": "string"
     },
     "id": {
      "description": "Transaction id; null when the transaction did not decode",
      "nullable": true,
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "message": {
      "description": "What to do about the rejection",
      "type": "string"
     }
    },
    "required": [
     "id",
     "accepted"
    ],
    "type": "object"
   },
   "SubmitRequest": {
    "properties": {
     "transaction": {
      "description": "Signed transaction wire bytes, hex",
      "type": "string"
     }
    },
    "required": [
     "transaction"
    ],
    "type": "object"
   },
   "Transaction": {
    "properties": {
     "code": {
      "type": "string"
     },
     "height": {
      "type": "integer"
     },
     "id": {
      "pattern": "^[0-9a-f]{64}$",
      "type": "string"
     },
     "kind": {
      "type": "string"
     },
     "message": {
      "type": "string"
     },
     "nonce": {
      "type": "integer"
     },
     "signer": {
      "type": "string"
     },
     "status": {
      "enum": [
       "pending",
       "committed",
       "rejected",
       "unknown"
      ],
      "type": "string"
     }
    },
    "required": [
     "id",
     "status"
    ],
    "type": "object"
   }
  }
 },
 "info": {
  "description": "Each node serves this API. Writes are signed transactions (built and signed offline with `scf tx`); reads come from the node's committed ledger. Errors are JSON {\"error\": {\"code\", \"message\"}}.",
  "title": "SCF Ledger node API",
  "version": "1.0.0"
 },
 "openapi": "3.0.3",
 "paths": {
  "/v1/invoices": {
   "get": {
    "summary": "An invoice with the receivable it backs, its status and every verification attestation; or a debtor's or seller's invoices",
    "parameters": [{"name": "key", "in": "query", "schema": {"type": "string"}, "description": "CODE/NUMBER"},
     {"name": "debtor", "in": "query", "schema": {"type": "string"}}, {"name": "seller", "in": "query", "schema": {"type": "string"}},
     {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000}}],
    "responses": {"200": {"description": "Invoices", "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}},
     "400": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
     "404": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
   }
  },
  "/v1/eligibility": {
   "post": {
    "summary": "Financing eligibility: every rule with its reason, the maximum advance and the price, as of this node's head; one fragment with an amount, or a batch",
    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["bank"], "properties": {
      "fragment": {"type": "string"}, "fragments": {"type": "array", "items": {"type": "string"}}, "bank": {"type": "string"},
      "amount": {"type": "string", "description": "major units, e.g. 142500.00"}, "currency": {"type": "string"},
      "policy": {"type": "object", "description": "the bank's policy, format of docs/examples/bank-policy.json"}}}}}},
    "responses": {"200": {"description": "An answer (or one per fragment for a batch)", "content": {"application/json": {"schema": {"type": "object"}}}},
     "400": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
   }
  },
  "/health": {
   "get": {
    "responses": {
     "200": {
      "description": "Running"
     },
     "503": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Error"
     }
    },
    "summary": "Liveness: 200 when the node runs, 503 when it halted"
   }
  },
  "/metrics": {
   "get": {
    "responses": {
     "200": {
      "content": {
       "text/plain": {
        "schema": {
         "type": "string"
        }
       }
      },
      "description": "Prometheus text format"
     }
    },
    "summary": "Prometheus metrics"
   }
  },
  "/openapi.json": {
   "get": {
    "responses": {
     "200": {
      "description": "OpenAPI 3 document"
     }
    },
    "summary": "This document"
   }
  },
  "/v1/blocks/{height}": {
   "get": {
    "parameters": [
     {
      "in": "path",
      "name": "height",
      "required": true,
      "schema": {
       "minimum": 1,
       "type": "integer"
      }
     },
     {
      "description": "Wait for the block if it is not committed yet (a long poll for following the chain)",
      "in": "query",
      "name": "wait",
      "schema": {
       "type": "boolean"
      }
     },
     {
      "description": "Seconds to wait (0.1-60, default 10); 404 if the block is still not committed",
      "in": "query",
      "name": "timeout",
      "schema": {
       "type": "number"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Block"
        }
       }
      },
      "description": "Block"
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Error"
     },
     "404": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Error"
     }
    },
    "summary": "A committed block header, its transaction ids and commit certificate"
   }
  },
  "/v1/blocks/{height}/proofs/{id}": {
   "get": {
    "parameters": [
     {
      "in": "path",
      "name": "height",
      "required": true,
      "schema": {
       "minimum": 1,
       "type": "integer"
      }
     },
     {
      "in": "path",
      "name": "id",
      "required": true,
      "schema": {
       "pattern": "^[0-9a-f]{64}$",
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/InclusionProof"
        }
       }
      },
      "description": "Proof"
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Error"
     },
     "404": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Error"
     }
    },
    "summary": "Merkle inclusion proofs of a transaction and its receipt in a certified block"
   }
  },
  "/v1/fragments": {
   "get": {
    "parameters": [
     {
      "in": "query",
      "name": "holder",
      "schema": {
       "type": "string"
      }
     },
     {
      "in": "query",
      "name": "state",
      "schema": {
       "enum": [
        "active",
        "locked",
        "financed",
        "transferred",
        "split",
        "settled",
        "written-off"
       ],
       "type": "string"
      }
     },
     {
      "in": "query",
      "name": "limit",
      "schema": {
       "maximum": 1000,
       "type": "integer"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "items": {
          "$ref": "#/components/schemas/Fragment"
         },
         "type": "array"
        }
       }
      },
      "description": "Fragments"
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Error"
     }
    },
    "summary": "List fragments by holder and/or state"
   }
  },
  "/v1/fragments/{id}": {
   "get": {
    "parameters": [
     {
      "in": "path",
      "name": "id",
      "required": true,
      "schema": {
       "pattern": "^[0-9a-f]{64}$",
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/FragmentDetail"
        }
       }
      },
      "description": "Fragment detail"
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Error"
     },
     "404": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Error"
     }
    },
    "summary": "A fragment with its provenance back to the root"
   }
  },
  "/v1/receivables": {
   "get": {
    "parameters": [
     {
      "in": "query",
      "name": "debtor",
      "schema": {
       "type": "string"
      }
     },
     {
      "in": "query",
      "name": "creditor",
      "schema": {
       "type": "string"
      }
     },
     {
      "in": "query",
      "name": "maturingFrom",
      "schema": {
       "format": "date",
       "type": "string"
      }
     },
     {
      "in": "query",
      "name": "maturingTo",
      "schema": {
       "format": "date",
       "type": "string"
      }
     },
     {
      "in": "query",
      "name": "status",
      "schema": {
       "enum": [
        "proposed",
        "issued",
        "active",
        "rejected",
        "withdrawn",
        "closed"
       ],
       "type": "string"
      }
     },
     {
      "in": "query",
      "name": "limit",
      "schema": {
       "maximum": 1000,
       "type": "integer"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "items": {
          "$ref": "#/components/schemas/Receivable"
         },
         "type": "array"
        }
       }
      },
      "description": "Receivables"
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Error"
     }
    },
    "summary": "List receivables by debtor, creditor, maturity range or status"
   }
  },
  "/v1/receivables/{id}": {
   "get": {
    "parameters": [
     {
      "in": "path",
      "name": "id",
      "required": true,
      "schema": {
       "pattern": "^[0-9a-f]{64}$",
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/ReceivableDetail"
        }
       }
      },
      "description": "Receivable detail"
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Error"
     },
     "404": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Error"
     }
    },
    "summary": "A receivable with its fragments, financing and full history"
   }
  },
  "/v1/status": {
   "get": {
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Status"
        }
       }
      },
      "description": "Status"
     }
    },
    "summary": "Node status: height, head, view, primary, peers, lag"
   }
  },
  "/v1/transactions": {
   "post": {
    "parameters": [
     {
      "description": "Wait until committed or refused",
      "in": "query",
      "name": "wait",
      "schema": {
       "type": "boolean"
      }
     },
     {
      "description": "Seconds to wait (0.1-60, default 10)",
      "in": "query",
      "name": "timeout",
      "schema": {
       "type": "number"
      }
     }
    ],
    "requestBody": {
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/SubmitRequest"
       }
      }
     },
     "required": true
    },
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Transaction"
        }
       }
      },
      "description": "Committed"
     },
     "202": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Transaction"
        }
       }
      },
      "description": "Admitted, not yet committed"
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Error"
     },
     "409": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Transaction"
        }
       }
      },
      "description": "Replayed"
     },
     "413": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Error"
     },
     "422": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Transaction"
        }
       }
      },
      "description": "Refused, with reason code"
     }
    },
    "summary": "Submit a signed transaction"
   }
  },
  "/v1/transactions/batch": {
   "post": {
    "description": "Admits up to 1,000 signed transactions in request order (one signer's consecutive nonces may share a batch). Waits for admission only; ask /v1/transactions/{id} for commitment. A transaction that does not decode is refused alone; the others still go in.",
    "requestBody": {
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/BatchSubmitRequest"
       }
      }
     },
     "required": true
    },
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/BatchSubmitResponse"
        }
       }
      },
      "description": "One result per transaction, in request order"
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "The body is not {\"transactions\": [hex, ...]}"
     },
     "413": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "More than 1,000 transactions, or a body over the size limit"
     }
    },
    "summary": "Submit many signed transactions at once"
   }
  },
  "/v1/transactions/{id}": {
   "get": {
    "parameters": [
     {
      "in": "path",
      "name": "id",
      "required": true,
      "schema": {
       "pattern": "^[0-9a-f]{64}$",
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Transaction"
        }
       }
      },
      "description": "Status"
     },
     "400": {
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      },
      "description": "Error"
     }
    },
    "summary": "Transaction status, with the reason if refused"
   }
  }
 }
}
"""#
}

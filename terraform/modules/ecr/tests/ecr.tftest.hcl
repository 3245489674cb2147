mock_provider "aws" {}

variables {
  name = "tickets/admission"
}

run "tags_are_immutable_and_images_scanned" {
  command = plan

  assert {
    condition     = aws_ecr_repository.this.image_tag_mutability == "IMMUTABLE"
    error_message = "Tags must be immutable: promotion copies a tag and must get the same image."
  }
  assert {
    condition     = aws_ecr_repository.this.image_scanning_configuration[0].scan_on_push
    error_message = "Images are scanned on push."
  }
  assert {
    condition     = aws_ecr_repository.this.encryption_configuration[0].encryption_type == "KMS"
    error_message = "Images are encrypted with KMS."
  }
  assert {
    condition     = aws_ecr_repository.this.force_delete == false
    error_message = "A repository with images is not deleted by default."
  }
}

run "lifecycle_expires_untagged_and_keeps_enough_to_roll_back" {
  command = plan

  variables {
    keep_tagged_images = 30
  }

  assert {
    condition     = jsondecode(aws_ecr_lifecycle_policy.this.policy).rules[0].selection.tagStatus == "untagged"
    error_message = "Rule 1 expires untagged images."
  }
  assert {
    condition     = jsondecode(aws_ecr_lifecycle_policy.this.policy).rules[1].selection.countNumber == 30
    error_message = "Rule 2 keeps keep_tagged_images images."
  }
}

run "rejects_an_uppercase_name" {
  command = plan

  variables {
    name = "Tickets/Admission"
  }

  expect_failures = [var.name]
}
